"""Users, sessions and API tokens. Secrets are random 32-byte tokens; only their SHA-256 digest
is stored, so a leaked database gives no usable credential (the tokens have full entropy, so a
fast hash is enough — unlike passwords)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import msgspec

from shared.db.database import Database, Executor, Row, utcnow

SESSION_TTL = timedelta(hours=8)
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


class User(msgspec.Struct, kw_only=True):
    id: int
    username: str
    role: str
    active: bool
    created_at: datetime


class TokenInfo(msgspec.Struct, kw_only=True):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None


class Credential(msgspec.Struct, kw_only=True):
    """Who a session or API token belongs to, and whether it is still valid."""

    user: User
    session_id: int | None = None
    token_id: int | None = None
    expired: bool = False


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _user(row: Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        role=row["role"],
        active=bool(row["active"]),
        created_at=row["created_at"],
    )


_USER_COLUMNS = "id, username, role, active, created_at"
_JOINED_USER_COLUMNS = ", ".join("u." + c.strip() for c in _USER_COLUMNS.split(","))


async def create_user(db: Executor, *, username: str, password_hash: str, role: str) -> User:
    now = utcnow()
    row = await db.fetchrow(
        f"""INSERT INTO users (username, password_hash, role, active, created_at, password_changed_at)
            VALUES ($1, $2, $3, TRUE, $4, $4) RETURNING {_USER_COLUMNS}""",
        username,
        password_hash,
        role,
        now,
    )
    assert row is not None
    return _user(row)


async def get_user(db: Executor, user_id: int) -> User | None:
    row = await db.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return None if row is None else _user(row)


async def get_login(db: Executor, username: str) -> tuple[User, str] | None:
    row = await db.fetchrow(f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE username = $1", username)
    return None if row is None else (_user(row), row["password_hash"])


async def list_users(db: Executor, *, page: int, page_size: int) -> tuple[list[User], int]:
    total = await db.fetchval("SELECT count(*) FROM users")
    rows = await db.fetch(
        f"SELECT {_USER_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2",
        page_size,
        (page - 1) * page_size,
    )
    return [_user(r) for r in rows], int(total)


async def set_password(
    db: Database, user_id: int, password_hash: str, *, keep_session: int | None = None
) -> None:
    """Change the hash and end every session except `keep_session` (the one that asked)."""
    now = utcnow()
    async with db.transaction() as tx:
        await tx.execute(
            "UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
            user_id,
            password_hash,
            now,
        )
        await tx.execute(
            """UPDATE sessions SET revoked_at = $2
               WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3""",
            user_id,
            now,
            keep_session,
        )


async def rehash_password(db: Executor, user_id: int, password_hash: str) -> None:
    """Same password, newer argon2 parameters: sessions stay."""
    await db.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


class LastActiveAdmin(Exception):
    """The change would leave no active admin, and nobody could administer users any more."""


async def update_user(
    db: Database,
    user_id: int,
    *,
    role: str | None,
    active: bool | None,
    password_hash: str | None = None,
    keep_session: int | None = None,
) -> User | None:
    """Change the role, active flag and/or password in one transaction (all or nothing).

    Deactivation ends the user's sessions and API tokens; a new password ends their sessions except
    `keep_session` (the admin's own, when they reset their own password). Raises LastActiveAdmin
    instead of leaving no active admin."""
    now = utcnow()
    removes_admin = role == "user" or active is False
    async with db.transaction() as tx:
        if removes_admin and tx.dialect == "postgresql":
            # Two admins demoting each other at once would each still see the other as admin
            # (write skew); locking the admin rows serialises them. SQLite's BEGIN IMMEDIATE already does.
            await tx.fetch("SELECT id FROM users WHERE role = 'admin' AND active FOR UPDATE")
        before = await tx.fetchrow("SELECT role, active FROM users WHERE id = $1", user_id)
        if before is None:
            return None
        row = await tx.fetchrow(
            f"""UPDATE users SET role = COALESCE($2, role), active = COALESCE($3, active),
                    password_hash = COALESCE($4, password_hash),
                    password_changed_at = CASE WHEN $4 IS NULL THEN password_changed_at ELSE $5 END
                WHERE id = $1 RETURNING {_USER_COLUMNS}""",
            user_id,
            role,
            active,
            password_hash,
            now,
        )
        if row is None:
            return None
        was_admin = before["role"] == "admin" and bool(before["active"])
        if (
            removes_admin
            and was_admin
            and not await tx.fetchval("SELECT count(*) FROM users WHERE role = 'admin' AND active")
        ):
            raise LastActiveAdmin()
        if active is False:
            await tx.execute(
                "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL", user_id, now
            )
            await tx.execute(
                "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
                now,
            )
        elif password_hash is not None:
            await tx.execute(
                """UPDATE sessions SET revoked_at = $2
                   WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3""",
                user_id,
                now,
                keep_session,
            )
    return _user(row)


# --- sessions ---------------------------------------------------------------------------------


async def create_session(db: Executor, user_id: int) -> tuple[str, datetime]:
    secret = new_secret()
    now = utcnow()
    expires = now + SESSION_TTL
    await db.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        digest(secret),
        user_id,
        now,
        expires,
    )
    return secret, expires


async def session_credential(db: Executor, secret: str) -> Credential | None:
    row = await db.fetchrow(
        f"""SELECT s.id AS session_id, s.expires_at, {_JOINED_USER_COLUMNS}
            FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND u.active""",
        digest(secret),
    )
    if row is None:
        return None
    return Credential(user=_user(row), session_id=row["session_id"], expired=row["expires_at"] <= utcnow())


async def revoke_session(db: Executor, session_id: int) -> None:
    await db.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", session_id, utcnow()
    )


# --- API tokens -------------------------------------------------------------------------------


async def create_token(db: Executor, user_id: int, name: str) -> tuple[TokenInfo, str]:
    secret = "sqa_" + new_secret()
    row = await db.fetchrow(
        """INSERT INTO api_tokens (token_hash, user_id, name, created_at) VALUES ($1, $2, $3, $4)
           RETURNING id, name, created_at, last_used_at""",
        digest(secret),
        user_id,
        name,
        utcnow(),
    )
    assert row is not None
    return TokenInfo(**row), secret


async def list_tokens(
    db: Executor, user_id: int, *, page: int, page_size: int
) -> tuple[list[TokenInfo], int]:
    total = await db.fetchval(
        "SELECT count(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    rows = await db.fetch(
        """SELECT id, name, created_at, last_used_at FROM api_tokens
           WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id LIMIT $2 OFFSET $3""",
        user_id,
        page_size,
        (page - 1) * page_size,
    )
    return [TokenInfo(**r) for r in rows], int(total)


async def revoke_token(db: Executor, user_id: int, token_id: int) -> bool:
    return (
        await db.execute(
            "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            token_id,
            user_id,
            utcnow(),
        )
        > 0
    )


async def find_token(db: Executor, token_digest: str) -> tuple[Credential, datetime | None] | None:
    """The credential of a live token (by its digest) and when it was last used."""
    row = await db.fetchrow(
        f"""SELECT t.id AS token_id, t.last_used_at, {_JOINED_USER_COLUMNS}
            FROM api_tokens t JOIN users u ON u.id = t.user_id
            WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.active""",
        token_digest,
    )
    if row is None:
        return None
    return Credential(user=_user(row), token_id=row["token_id"]), row["last_used_at"]


def use_is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    """Minute resolution is enough for "last used", and spares a write on every request."""
    return last_used_at is None or now - last_used_at >= TOKEN_USE_RESOLUTION


async def touch_token(db: Executor, token_id: int, now: datetime) -> None:
    await db.execute("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", token_id, now)
