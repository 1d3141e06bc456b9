"""The guard applied to a data source: its verdict on a statement, per dialect. The allowed
tables come from the data source's schema snapshot (which already leaves out `exclude`d tables),
so generated SQL can neither see nor query anything else. Used by the worker's validating step
and by the API when an admin saves a knowledge example."""

from __future__ import annotations

import asyncio
import sqlite3

from shared.settings import sqlite_path
from shared.sqlguard.postgres import PostgresPolicy, check_postgres
from shared.sqlguard.sqlite import check_sqlite, harden_connection
from shared.targets.config import DataSource
from shared.targets.introspect import SchemaSnapshot


def search_path(source: DataSource, snapshot: SchemaSnapshot) -> tuple[str, ...]:
    if source.schemas:
        return source.schemas
    schemas = sorted({t.schema for t in snapshot.tables}, key=lambda s: (s != "public", s))
    return tuple(schemas) or ("public",)


def postgres_policy(source: DataSource, snapshot: SchemaSnapshot) -> PostgresPolicy:
    # Catalogue names as they are: the guard compares like PostgreSQL does ("Orders" is not orders).
    return PostgresPolicy(
        allowed_tables=frozenset((t.schema, t.name) for t in snapshot.tables),
        search_path=search_path(source, snapshot),
    )


def sqlite_tables(snapshot: SchemaSnapshot) -> frozenset[str]:
    return frozenset(t.name.lower() for t in snapshot.tables)


def _check_sqlite_file(source: DataSource, sql: str, tables: frozenset[str]) -> str:
    path = sqlite_path(source.url)
    immutable = "&immutable=1" if "immutable=1" in source.url else ""
    conn = sqlite3.connect(f"file:{path}?mode=ro{immutable}", uri=True)
    try:
        harden_connection(conn, tables)
        return check_sqlite(conn, sql, tables)
    finally:
        conn.close()


async def check(source: DataSource, snapshot: SchemaSnapshot, sql: str) -> str:
    """The statement to execute, or `SqlRejected` naming the rule broken."""
    if source.dialect == "postgresql":
        return check_postgres(sql, postgres_policy(source, snapshot))
    return await asyncio.to_thread(_check_sqlite_file, source, sql, sqlite_tables(snapshot))
