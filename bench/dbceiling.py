"""A baseline for scenario 1: the app-database half of a submit, without HTTP.

Inserting an attempt and its `queued` event, back to back from 32 concurrent tasks over a
10-connection asyncpg pool (the API's pool size), in the bench process, in two shapes:

- `one_statement`: one `WITH a AS (INSERT … RETURNING) INSERT INTO attempt_events …` in autocommit
  on a pool without asyncpg's reset query — the shape of `POST /api/queries` since 583465f9;
- otherwise BEGIN / INSERT / INSERT / COMMIT on asyncpg's default pool, which also sends
  `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release — the
  shape before it (bench/README.md, finding 2).

Besides the rate: the CPU per insert of the database's backends and of this client process, which
other work on the machine disturbs much less than the rate."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from bench.stack import Stack, cpu_delta, cpu_seconds

CONCURRENCY = 32
POOL_SIZE = 10


async def _no_reset(_: asyncpg.Connection) -> None:
    return None


async def _pool(url: str, pool_reset: bool, tries: int = 5) -> asyncpg.Pool:
    """The PostgreSQL server is shared (max_connections): wait a little when it is full."""
    extra = {} if pool_reset else {"reset": _no_reset}
    for attempt in range(tries):
        try:
            return await asyncpg.create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE, **extra)
        except asyncpg.TooManyConnectionsError:
            if attempt + 1 == tries:
                raise
            await asyncio.sleep(2)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Ceiling:
    per_s: float  # transactions per second
    db_ms: float  # CPU of the database's backends per transaction
    client_ms: float  # CPU of this (client) process per transaction


ATTEMPT = """INSERT INTO attempts (id, user_id, question, data_source, status, seq, created_at)
              VALUES ($1, $2, 'db ceiling', 'default', 'queued', 1, $3) RETURNING *"""
EVENT = "INSERT INTO attempt_events (attempt_id, seq, status, at) VALUES ($1, 1, 'queued', $2)"
BOTH = f"""WITH a AS ({ATTEMPT}),
                e AS (INSERT INTO attempt_events (attempt_id, seq, status, at)
                      SELECT id, 1, 'queued', created_at FROM a)
           SELECT * FROM a"""


async def measure(stack: Stack, seconds: float, *, one_statement: bool) -> Ceiling:
    pool = await _pool(stack.app_url, pool_reset=not one_statement)
    done = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            attempt_id, now = str(uuid.uuid4()), datetime.now(UTC)
            if one_statement:
                await pool.fetchrow(BOTH, attempt_id, stack.user_id, now)
            else:
                async with pool.acquire() as conn, conn.transaction():
                    await conn.fetchrow(ATTEMPT, attempt_id, stack.user_id, now)
                    await conn.execute(EVENT, attempt_id, now)
            done += 1

    db_before, client_before = await stack.backend_cpu(), cpu_seconds(os.getpid())
    started = time.monotonic()
    try:
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.monotonic() - started
        client_cpu = cpu_seconds(os.getpid()) - client_before
        db_cpu = cpu_delta(db_before, await stack.backend_cpu())
    finally:
        await pool.close()
    return Ceiling(done / elapsed, db_cpu * 1000 / max(done, 1), client_cpu * 1000 / max(done, 1))
