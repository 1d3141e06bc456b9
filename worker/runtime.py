"""One event loop and one set of clients per worker process (STYLE 9).

Celery's thread pool runs each task in its own thread; the task hands its coroutine to this
process's loop, which owns the app-database pool, the target pools and the LLM client. The pools
are never shared across loops, and dozens of attempts wait on the LLM at once on one loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from shared.db.database import Database, open_database
from shared.events.bus import EventBus, make_bus
from shared.settings import Settings
from shared.targets.config import DataSource
from shared.targets.introspect import SchemaSnapshot, introspect
from shared.targets.snapshots import latest, save
from shared.tasks import Publisher
from worker.announce import Announcer
from worker.pipeline.execute import PostgresTarget, SqliteTarget
from worker.pipeline.generate import LlmClient, LlmConfig

T = TypeVar("T")
log = logging.getLogger("sqlagent.worker")

SNAPSHOT_CACHE_S = 60.0


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sqlagent-loop", daemon=True)
        self._thread.start()
        self.db: Database = self.run(open_database(settings.database.url, max_size=10))
        self.bus: EventBus = self.run(self._make_bus())
        self.announcer = Announcer(self.bus)
        self.publisher = Publisher(
            settings.broker.broker_url, attempt_deadline_s=settings.agent.attempt_deadline_s
        )
        llm = settings.llm
        self.llm: LlmClient | None = (
            LlmClient(
                LlmConfig(
                    base_url=llm.base_url,
                    api_key=llm.api_key,
                    model=llm.model,
                    timeout_s=llm.timeout_s,
                    max_retries=llm.max_retries,
                )
            )
            if llm.configured
            else None
        )
        self._targets: dict[str, PostgresTarget | SqliteTarget] = {}
        self._snapshots: dict[str, tuple[float, SchemaSnapshot]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._sweeper: concurrent.futures.Future[None] | None = None

    async def _make_bus(self) -> EventBus:
        return make_bus(self.settings.broker.redis_url)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the process loop from any other thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def check_targets(self) -> None:
        """Warn loudly about PostgreSQL targets whose role can do more than read."""
        from shared.targets.privileges import role_findings

        for source in self.settings.data_sources:
            if source.dialect != "postgresql":
                continue
            try:
                findings = await role_findings(source)
            except Exception as exc:  # unreachable now; attempts will say TARGET_UNAVAILABLE
                log.warning("data source %s: could not check its role: %s", source.name, type(exc).__name__)
                continue
            if findings:
                log.warning(
                    "SECURITY: data source %s: %s. sqlagent's guard keeps generated SQL read-only, but "
                    "use a SELECT-only role as well (deploy/sql/readonly_role.sql).",
                    source.name,
                    "; ".join(findings),
                )

    def start_sweeper(self) -> None:
        from worker.sweeper import sweep_forever

        if self._sweeper is None:
            self._sweeper = asyncio.run_coroutine_threadsafe(sweep_forever(self), self.loop)

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def snapshot(self, source: DataSource, *, refresh: bool = False) -> SchemaSnapshot:
        cached = self._snapshots.get(source.name)
        if cached and not refresh and time.monotonic() - cached[0] < SNAPSHOT_CACHE_S:
            return cached[1]
        async with self._lock("snapshot:" + source.name):
            snap = None if refresh else await latest(self.db, source.name)
            if snap is None:
                snap = await introspect(source)
                await save(self.db, snap)
            self._snapshots[source.name] = (time.monotonic(), snap)
            return snap

    async def target(self, source: DataSource, snapshot: SchemaSnapshot) -> PostgresTarget | SqliteTarget:
        # A SQLite target bakes the allowed tables into its authorizer: a new snapshot, a new target.
        key = (
            source.name
            if source.dialect == "postgresql"
            else f"{source.name}@{snapshot.taken_at.isoformat()}"
        )
        existing = self._targets.get(key)
        if existing is not None:
            return existing
        async with self._lock("target:" + key):
            if key not in self._targets:
                if source.dialect == "postgresql":
                    self._targets[key] = await PostgresTarget.open(source)
                else:
                    tables = frozenset(t.name.lower() for t in snapshot.tables)
                    self._targets[key] = await SqliteTarget.open(source, tables)
            return self._targets[key]

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for target in self._targets.values():
            await target.close()
        if self.llm is not None:
            await self.llm.close()
        await self.announcer.close()  # what was committed is announced before the bus goes
        await self.bus.close()
        await self.publisher.close()
        await self.db.close()

    def close(self) -> None:
        try:
            self.run(self.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime(settings: Settings) -> WorkerRuntime:
    """The process's runtime, built on first use (thread pools fire no worker_process_init)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = WorkerRuntime(settings)
            _runtime.start_sweeper()
            asyncio.run_coroutine_threadsafe(_runtime.check_targets(), _runtime.loop)
        return _runtime


def shutdown_runtime() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None
