"""Celery tasks: thin — decode the message, run the pipeline on the process loop."""

from __future__ import annotations

import logging

from shared.tasks import RUN_ATTEMPT
from worker.celery_app import app, settings
from worker.pipeline.run import run_attempt
from worker.runtime import get_runtime

log = logging.getLogger("sqlagent.worker")


@app.task(name=RUN_ATTEMPT, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run(attempt_id: str) -> str:
    """Arguments: the attempt id only (what Flower shows). Returns the final status."""
    runtime = get_runtime(settings())
    return runtime.run(run_attempt(runtime, attempt_id))
