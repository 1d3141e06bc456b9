"""Shared fixtures: a real PostgreSQL database per test session (built by the migrations), SQLite
app databases per test, a Redis database per xdist worker, and the live stack (API and worker
processes) for integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis
from support.pg import (
    PG_ADMIN_URL,
    REDIS_BASE,
    create_pg_database,
    create_pg_database_with,
    drop_pg_database,
    pg_url,
)

from shared.db.database import Database, open_database
from shared.db.migrate import migrate

__all__ = ["PG_ADMIN_URL", "create_pg_database", "drop_pg_database", "pg_url"]


@pytest.fixture(scope="session")
async def pg_app_url() -> AsyncIterator[str]:
    """A PostgreSQL app database for this test session, brought to head by the migrations."""
    name = await create_pg_database()
    url = pg_url(name)
    await migrate(url)
    yield url
    await drop_pg_database(name)


@pytest.fixture
async def sqlite_app_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/app.db"
    await migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
async def app_db(request, tmp_path, pg_app_url) -> AsyncIterator[Database]:  # type: ignore[no-untyped-def]
    """The app database on both dialects, migrated, with empty tables."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/app.db"
        await migrate(url)
    else:
        url = pg_app_url
    db = await open_database(url)
    if request.param == "postgresql":
        await db.execute(
            "TRUNCATE users, sessions, api_tokens, attempts, attempt_events, attempt_results, result_chunks, "
            "knowledge_examples, schema_snapshots RESTART IDENTITY CASCADE"
        )
    yield db
    await db.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database of its own for this test session: Celery queues must not be shared with
    another xdist worker or another test run on the same machine. Claimed with a lock key in db 0."""
    lock = redis.Redis.from_url(f"{REDIS_BASE}/0")
    owner = uuid.uuid4().hex
    for index in range(1, 16):
        if lock.set(f"sqlagent-tests:db:{index}", owner, nx=True, ex=3600):
            break
    else:
        raise RuntimeError("no free Redis database (1-15) for the tests")
    url = f"{REDIS_BASE}/{index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url
    if lock.get(f"sqlagent-tests:db:{index}") == owner.encode():
        lock.delete(f"sqlagent-tests:db:{index}")
    lock.close()


@pytest.fixture(scope="module")
async def make_target_db() -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """`await make_target_db(setup_sql)` -> URL of a fresh target database where setup_sql has
    run; every one is dropped at the end of the module."""
    created: list[str] = []

    async def make(setup_sql: str) -> str:
        name = await create_pg_database_with(setup_sql)
        created.append(name)
        return pg_url(name)

    yield make
    for name in created:
        await drop_pg_database(name)
