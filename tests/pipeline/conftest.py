"""A throwaway PostgreSQL target database per test module (random name, dropped at the end)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

PG_ADMIN_URL = os.environ.get("SQLAGENT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def target_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


@pytest.fixture(scope="module")
async def make_target_db() -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """`await make_target_db(setup_sql)` -> URL of a fresh database where setup_sql has run."""
    created: list[str] = []

    async def make(setup_sql: str) -> str:
        name = f"sqlagent_target_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        created.append(name)
        conn = await asyncpg.connect(target_url(name))
        try:
            await conn.execute(setup_sql)
        finally:
            await conn.close()
        return target_url(name)

    yield make
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        for name in created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
