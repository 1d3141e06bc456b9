"""Embedded mode: the real Celery task code, run by one worker inside the API process over
kombu's in-memory transport (no broker to install). Same tasks, same pipeline, same sweeper."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from celery.worker import WorkController
from litestar import Litestar

from shared.settings import Settings

EMBEDDED_CONCURRENCY = 8


class _EmbeddedWorker(WorkController):
    def __init__(self, *args: object, **kwargs: object) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.ready.set()


def embedded_worker(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        from worker.celery_app import configure
        from worker.runtime import get_runtime, shutdown_runtime

        app = configure(settings)
        import worker.tasks

        runtime = await asyncio.to_thread(get_runtime, settings)
        worker = _EmbeddedWorker(
            app=app,
            pool="threads",
            concurrency=EMBEDDED_CONCURRENCY,
            hostname="embedded@localhost",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
        )
        thread = threading.Thread(target=worker.start, name="sqlagent-embedded-worker", daemon=True)
        thread.start()
        await asyncio.to_thread(worker.ready.wait, 30)
        del runtime
        try:
            yield
        finally:
            worker.stop(in_sighandler=False)
            await asyncio.to_thread(thread.join, 10)
            await asyncio.to_thread(shutdown_runtime)

    return lifespan
