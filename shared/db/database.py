"""The app database behind one small interface, with explicit SQL.

Repository code writes PostgreSQL-style `$1` placeholders once; the SQLite side rewrites them to
SQLite's numbered `?1` form. Rows behave as mappings on both drivers. Timestamps go in as aware
`datetime`s and come out as aware `datetime`s (SQLite stores ISO 8601 UTC text in columns declared
TIMESTAMPTZ); BOOLEAN columns come out as `bool` on both."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import asyncpg

Row = Mapping[str, Any]


class Executor(Protocol):
    """What repository functions need: a database or a transaction on it."""

    dialect: str

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> int: ...


class Database(Executor, Protocol):
    def transaction(self) -> Any: ...  # async context manager yielding an Executor
    async def close(self) -> None: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- SQLite -----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=512)
def _to_sqlite(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql)


def _adapt_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the app database; use shared.db.database.utcnow()")
    return value.astimezone(UTC).isoformat()


sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_converter("TIMESTAMPTZ", lambda raw: datetime.fromisoformat(raw.decode()))
sqlite3.register_converter("BOOLEAN", lambda raw: raw not in (b"0", b""))


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class _SqliteExecutor:
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._conn.execute(_to_sqlite(sql), args) as cursor:
            return list(await cursor.fetchall())  # type: ignore[arg-type]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._conn.execute(_to_sqlite(sql), args) as cursor:
            return await cursor.fetchone()  # type: ignore[return-value]

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()))

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._conn.execute(_to_sqlite(sql), args) as cursor:
            return cursor.rowcount


class SqliteDatabase(_SqliteExecutor):
    """One connection per event loop; a lock serialises statements and transactions, which is what
    SQLite does to writers anyway. WAL lets other processes read meanwhile."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(
            str(path), detect_types=sqlite3.PARSE_DECLTYPES, isolation_level=None, timeout=30
        )
        conn.row_factory = _dict_row  # type: ignore[assignment]
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=30000")
        return cls(conn)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._lock:
            return await super().fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._lock:
            return await super().fetchrow(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._lock:
            return await super().execute(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._lock:
            # IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading.
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteExecutor(self._conn)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")

    async def close(self) -> None:
        await self._conn.close()


# --- PostgreSQL -------------------------------------------------------------------------------


class _PostgresExecutor:
    dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._conn.fetch(sql, *args)  # type: ignore[no-any-return]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._conn.fetchrow(sql, *args)  # type: ignore[no-any-return]

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        status: str = await self._conn.execute(sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0


async def _reset_app_connection(conn: asyncpg.Connection) -> None:
    """What a pooled app-database connection needs before its next use. Our sessions change nothing
    session-wide (no SET, LISTEN, advisory locks or cursors), so asyncpg's default reset query
    (`RESET ALL; UNLISTEN *; ...`) on every release would be a round trip for nothing; only a
    transaction interrupted by a cancellation needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresDatabase(_PostgresExecutor):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.pool = pool

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresDatabase:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            # Always UTC on the wire, as a startup parameter (a SET would not survive RESET ALL).
            server_settings={"timezone": "UTC"},
            reset=_reset_app_connection,
            timeout=10,
            command_timeout=60,
        )
        return cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PostgresExecutor(conn)

    async def close(self) -> None:
        await self.pool.close()


async def open_database(url: str, *, max_size: int = 10) -> Database:
    if url.startswith("sqlite:"):
        from shared.settings import sqlite_path

        return await SqliteDatabase.open(sqlite_path(url))
    return await PostgresDatabase.open(url, max_size=max_size)


def is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return True
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
