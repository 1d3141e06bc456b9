"""Celery tasks: thin — decode the message, run the pipeline on the process loop."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.signals import worker_init, worker_ready, worker_shutdown

from shared.heap import freeze_startup_objects
from shared.logs import log_context
from shared.tasks import REQUEST_ID_HEADER, RUN_ATTEMPT
from worker import metrics
from worker.celery_app import app, settings
from worker.pipeline.run import run_attempt
from worker.runtime import get_runtime, shutdown_runtime

log = logging.getLogger("sqlagent.worker")


@app.task(name=RUN_ATTEMPT, bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run(self: Task, attempt_id: str) -> str:
    """Arguments: the attempt id only (what Flower shows). Returns the final status.

    The submitting request's id rides in a message header, so this attempt's log lines carry
    both ids (the context reaches the runtime's loop through `run_coroutine_threadsafe`)."""
    runtime = get_runtime(settings())
    with log_context(request_id=self.request.get(REQUEST_ID_HEADER), attempt_id=attempt_id):
        status = runtime.run(run_attempt(runtime, attempt_id))
        log.info("attempt %s ended %s", attempt_id, status, extra={"status": status})
        return status


@worker_init.connect
def _start_metrics(**_: Any) -> None:
    # Celery workers only: the embedded worker's metrics are in the API's own /metrics.
    current = settings()
    if not current.broker.embedded:
        metrics.start_server(current.worker_metrics_port)


@worker_ready.connect
def _start_runtime(**_: Any) -> None:
    # At start, not on the first task: the sweeper must run even when no message arrives, e.g.
    # to requeue the attempts of a worker that was killed.
    get_runtime(settings())
    # Every attempt shares the runtime's one event loop: a 50 ms full collection stalls them all.
    freeze_startup_objects()


@worker_shutdown.connect
def _stop_runtime(**_: Any) -> None:
    shutdown_runtime()
