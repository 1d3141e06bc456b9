"""The validating and executing steps, per dialect: the guard's verdict, then a run on the
hardened target. The data source's allowed tables come from its schema snapshot (which already
leaves out `exclude`d tables), so the LLM can neither see nor query anything else."""

from __future__ import annotations

import asyncio
import sqlite3

from shared.settings import sqlite_path
from shared.sqlguard.postgres import PostgresPolicy, check_postgres
from shared.sqlguard.sqlite import check_sqlite
from shared.targets.config import DataSource
from shared.targets.introspect import SchemaSnapshot
from worker.pipeline.execute import ExecutionLimits, PostgresTarget, ResultSet, SqliteTarget


def search_path(source: DataSource, snapshot: SchemaSnapshot) -> tuple[str, ...]:
    if source.schemas:
        return source.schemas
    schemas = sorted({t.schema for t in snapshot.tables}, key=lambda s: (s != "public", s))
    return tuple(schemas) or ("public",)


def postgres_policy(source: DataSource, snapshot: SchemaSnapshot) -> PostgresPolicy:
    return PostgresPolicy(
        allowed_tables=frozenset((t.schema.lower(), t.name.lower()) for t in snapshot.tables),
        search_path=search_path(source, snapshot),
    )


def sqlite_tables(snapshot: SchemaSnapshot) -> frozenset[str]:
    return frozenset(t.name.lower() for t in snapshot.tables)


def _check_sqlite_file(source: DataSource, sql: str, tables: frozenset[str]) -> str:
    path = sqlite_path(source.url)
    immutable = "&immutable=1" if "immutable=1" in source.url else ""
    conn = sqlite3.connect(f"file:{path}?mode=ro{immutable}", uri=True)
    try:
        return check_sqlite(conn, sql, tables)
    finally:
        conn.close()


async def check(source: DataSource, snapshot: SchemaSnapshot, sql: str) -> str:
    """The statement to execute, or `SqlRejected` naming the rule broken."""
    if source.dialect == "postgresql":
        return check_postgres(sql, postgres_policy(source, snapshot))
    return await asyncio.to_thread(_check_sqlite_file, source, sql, sqlite_tables(snapshot))


async def execute(
    target: PostgresTarget | SqliteTarget, source: DataSource, snapshot: SchemaSnapshot, sql: str,
    limits: ExecutionLimits,
) -> ResultSet:
    if isinstance(target, PostgresTarget):
        return await target.run(sql, search_path=search_path(source, snapshot), limits=limits)
    return await target.run(sql, limits=limits)
