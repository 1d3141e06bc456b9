"""Prometheus metrics of a worker process: how long each stage of an attempt takes and the LLM
tokens it used. A Celery worker serves them on SQLAGENT_WORKER_METRICS_PORT (unset: off); the
embedded worker shares the API process's registry, so the API's /metrics shows them.

Attempt outcomes are not counted here: the API counts them from the app database, which sees
every worker."""

from __future__ import annotations

import logging
import threading
from typing import Literal

from prometheus_client import Counter, Histogram, disable_created_metrics, start_http_server

log = logging.getLogger("sqlagent.metrics")

disable_created_metrics()  # as the API does: no `*_created` series

Stage = Literal["queue", "llm", "guard", "execute"]
STAGES: tuple[Stage, ...] = ("queue", "llm", "guard", "execute")

# From a millisecond guard check to a minutes-long queue wait or LLM call.
_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

STAGE_SECONDS = Histogram(
    "sqlagent_stage_seconds",
    "Seconds per attempt stage: queue (accepted to claimed), llm (one call), guard (one check), "
    "execute (one statement)",
    ["stage"],
    buckets=_BUCKETS,
)
LLM_TOKENS = Counter("sqlagent_llm_tokens", "LLM tokens used, as the endpoint reported them", ["kind"])

for _stage in STAGES:
    STAGE_SECONDS.labels(_stage)
for _kind in ("prompt", "completion"):
    LLM_TOKENS.labels(_kind)

_server_lock = threading.Lock()
_server_port: int | None = None


def observe_stage(stage: Stage, seconds: float) -> None:
    STAGE_SECONDS.labels(stage).observe(max(seconds, 0.0))


def count_tokens(prompt: int, completion: int) -> None:
    if prompt:
        LLM_TOKENS.labels("prompt").inc(prompt)
    if completion:
        LLM_TOKENS.labels("completion").inc(completion)


def start_server(port: int | None) -> None:
    """Serve /metrics on `port` once per process (None: off). A port already taken (two workers
    on one host with the same setting) is logged, not fatal: the worker still works."""
    global _server_port
    if port is None:
        return
    with _server_lock:
        if _server_port is not None:
            return
        try:
            start_http_server(port)
        except OSError as exc:
            log.warning("worker metrics: cannot listen on port %d: %s", port, exc)
            return
        _server_port = port
    log.info("worker metrics on http://0.0.0.0:%d/metrics", port)
