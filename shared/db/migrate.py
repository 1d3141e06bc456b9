"""Applies the plain-SQL migrations in `migrations/<dialect>/` in name order, once each.

Safe to run twice and from two processes at once: PostgreSQL serialises runners with a
transaction-level advisory lock, SQLite with `BEGIN IMMEDIATE` (the database write lock). Each
file is applied in the same transaction that records it, so a failing file leaves nothing behind."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from importlib import resources

import asyncpg

from shared.db.database import utcnow
from shared.settings import sqlite_path

# Any constant works; it only has to be the same for every runner.
_PG_LOCK_KEY = 0x5A6E7401

_RECORD_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL
)"""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str


def available(dialect: str) -> list[Migration]:
    folder = resources.files("migrations").joinpath(dialect)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name, f.read_text(encoding="utf-8")) for f in files]


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; return the names applied by this call."""
    if database_url.startswith("sqlite:"):
        return _migrate_sqlite(database_url)
    return await _migrate_postgres(database_url)


async def pending(database_url: str) -> list[str]:
    """Names of migrations not applied yet (for readiness checks)."""
    dialect = "sqlite" if database_url.startswith("sqlite:") else "postgres"
    names = [m.name for m in available(dialect)]
    if dialect == "sqlite":
        path = sqlite_path(database_url)
        if not path.exists():
            return names
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            applied = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        except sqlite3.OperationalError:
            applied = set()
        finally:
            conn.close()
    else:
        conn_pg = await asyncpg.connect(database_url, timeout=5)
        try:
            exists = await conn_pg.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            rows = await conn_pg.fetch("SELECT name FROM schema_migrations") if exists else []
            applied = {r["name"] for r in rows}
        finally:
            await conn_pg.close()
    return [n for n in names if n not in applied]


def _split_sqlite(script: str) -> list[str]:
    """Split a script into statements with SQLite's own notion of a complete statement."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(ln.strip().startswith("--") for ln in buffer.strip().splitlines()):
        raise ValueError(f"incomplete statement at the end of a migration: {buffer.strip()[:80]!r}")
    return statements


def _migrate_sqlite(database_url: str) -> list[str]:
    path = sqlite_path(database_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=60)
    applied_now: list[str] = []
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_RECORD_TABLE)
            done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
            for migration in available("sqlite"):
                if migration.name in done:
                    continue
                for statement in _split_sqlite(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (migration.name, utcnow().isoformat()),
                )
                applied_now.append(migration.name)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()
    return applied_now


async def _migrate_postgres(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url, timeout=10)
    applied_now: list[str] = []
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _PG_LOCK_KEY)
            await conn.execute(_RECORD_TABLE)
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for migration in available("postgres"):
                if migration.name in done:
                    continue
                # A migration file is ours, not user input: the simple protocol may run it whole.
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)",
                    migration.name,
                    utcnow().isoformat(),
                )
                applied_now.append(migration.name)
    finally:
        await conn.close()
    return applied_now
