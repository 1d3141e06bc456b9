"""Celery tasks: thin — decode the message, run the pipeline on the process loop."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from shared.tasks import RUN_ATTEMPT
from worker.celery_app import app, settings
from worker.pipeline.run import run_attempt
from worker.runtime import get_runtime, shutdown_runtime

log = logging.getLogger("sqlagent.worker")


@app.task(name=RUN_ATTEMPT, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run(attempt_id: str) -> str:
    """Arguments: the attempt id only (what Flower shows). Returns the final status."""
    runtime = get_runtime(settings())
    return runtime.run(run_attempt(runtime, attempt_id))


@worker_ready.connect
def _start_runtime(**_: Any) -> None:
    # At start, not on the first task: the sweeper must run even when no message arrives, e.g.
    # to requeue the attempts of a worker that was killed.
    get_runtime(settings())


@worker_shutdown.connect
def _stop_runtime(**_: Any) -> None:
    shutdown_runtime()
