"""Test databases on the local PostgreSQL, and where the test services are."""

from __future__ import annotations

import os
import uuid

import asyncpg

PG_ADMIN_URL = os.environ.get("SQLAGENT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("SQLAGENT_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


async def create_pg_database(prefix: str = "sqlagent_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_pg_database_with(setup_sql: str, prefix: str = "sqlagent_target") -> str:
    """A fresh database where `setup_sql` has run; returns its name."""
    name = await create_pg_database(prefix)
    await execute(pg_url(name), setup_sql)
    return name
