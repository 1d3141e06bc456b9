"""Schema snapshots as the API takes them: the latest stored one, or a fresh one on first use.

Introspection talks to the target database, so it can be slow or fail: a target that is down is
503 SERVICE_UNAVAILABLE (the reason goes to the log, not to the client — it may name hosts).
Within one API process a lock per data source makes concurrent first requests wait for one
introspection instead of each running their own; across processes two snapshots may be taken,
which is harmless (the newest wins)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import weakref

import asyncpg

from api.errors import DataSourceNotFound, ServiceUnavailable
from api.state import Services
from shared.pipeline_errors import TargetUnavailable
from shared.targets import snapshots
from shared.targets.config import DataSource
from shared.targets.introspect import SchemaSnapshot, introspect

log = logging.getLogger("sqlagent.api")

# Above introspection's own bounds (connect retries, a 30 s catalogue timeout): the backstop.
INTROSPECT_TIMEOUT_S = 90.0

# What a target that is down, restarting or overloaded raises while being introspected.
TARGET_ERRORS: tuple[type[BaseException], ...] = (
    TargetUnavailable,
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
)

# Locks belong to one event loop; keyed by loop so a second app (tests) never shares one.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _lock(name: str) -> asyncio.Lock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(name, asyncio.Lock())


def data_source(svc: Services, name: str) -> DataSource:
    source = svc.settings.data_source(name)
    if source is None:
        raise DataSourceNotFound(f"No data source named {name!r}; GET /api/data-sources lists them")
    return source


def unavailable(source: DataSource, exc: BaseException) -> ServiceUnavailable:
    log.warning("data source %s unavailable: %s: %s", source.name, type(exc).__name__, exc)
    return ServiceUnavailable(f"Data source {source.name!r} is unreachable right now; try again shortly")


async def current(svc: Services, source: DataSource) -> SchemaSnapshot:
    """The latest stored snapshot, taken now if there is none."""
    snapshot = await snapshots.latest(svc.db, source.name)
    if snapshot is not None:
        return snapshot
    async with _lock(source.name):
        # Whoever held the lock before us may have just stored one.
        snapshot = await snapshots.latest(svc.db, source.name)
        return snapshot if snapshot is not None else await _take(svc, source)


async def refresh(svc: Services, source: DataSource) -> SchemaSnapshot:
    async with _lock(source.name):
        return await _take(svc, source)


async def _take(svc: Services, source: DataSource) -> SchemaSnapshot:
    try:
        async with asyncio.timeout(INTROSPECT_TIMEOUT_S):
            snapshot = await introspect(source)
    except TARGET_ERRORS as exc:
        raise unavailable(source, exc) from exc
    await snapshots.save(svc.db, snapshot)
    return snapshot
