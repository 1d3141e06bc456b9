"""Helpers for the identity and rate-limit tests: API processes over their own app database, users
written straight into it, and direct reads of what the API stored."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import redis

from shared.db.database import Database, open_database
from shared.db.migrate import migrate
from shared.users import repository as users
from shared.users.passwords import ahash_password
from support.stack import Stack, base_env

RATE_LIMIT_KEYS = "sqlagent:ratelimit:*"


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[Database]:
    db = await open_database(database_url, max_size=4)
    try:
        yield db
    finally:
        await db.close()


_hashes: dict[str, str] = {}


async def make_user(
    database_url: str, prefix: str = "user", *, role: str = "user", password: str | None = None
) -> tuple[int, str, str]:
    """A fresh user (unique name) straight in the app database: (id, username, password). Users
    share a password unless given one, so its argon2 hash (~0.1 s) is computed once."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    password = password or "correct-horse-battery-staple"
    if password not in _hashes:
        _hashes[password] = await ahash_password(password)
    async with opened(database_url) as db:
        user = await users.create_user(db, username=name, password_hash=_hashes[password], role=role)
    return user.id, name, password


async def start_stack(workdir: Path, database_url: str, **env: str) -> Stack:
    """One API process (embedded mode: its own in-process worker) over a migrated app database."""
    await migrate(database_url)
    stack = Stack(env=base_env(SQLAGENT_DATABASE_URL=database_url, **env), workdir=workdir)
    stack.start_api()
    return stack


def login(base_url: str, username: str, password: str, *, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return httpx.post(
        f"{base_url}/api/auth/login",
        json={"username": username, "password": password},
        headers=headers,
        timeout=30,
    )


@contextmanager
def session(base_url: str, username: str, password: str) -> Iterator[httpx.Client]:
    """A logged-in cookie-session client."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        resp = client.post("/api/auth/login", json={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        yield client


def bearer(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def clear_rate_limits(redis_url: str) -> None:
    """Rate-limit counters are keyed by user id and address; a fresh app database reuses ids."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(RATE_LIMIT_KEYS, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def assert_error(resp: httpx.Response, status: int, error_code: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == error_code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body  # type: ignore[no-any-return]
