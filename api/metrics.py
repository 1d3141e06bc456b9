"""Prometheus metrics of the API: `GET /metrics`.

Two kinds. Counted in this process: HTTP requests by route template and status, their latency,
open SSE streams (and, in embedded mode, the in-process worker's stage timings and tokens — they
live in the same default registry). Read from the app database at scrape time:
`sqlagent_attempts_total{status,error_code}` and the queue depth — the database sees every
worker's attempts, so any API process answers for the whole deployment. Also the broker queue's
length, read from Redis.

Several API processes (`serve --workers N`): set PROMETHEUS_MULTIPROC_DIR and this process's
counters are merged with its siblings' (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.types import Message, Scope
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from api.requestid import route_of, started
from api.state import Services, services
from shared.attempts import repository as attempts
from shared.db.database import Executor
from shared.tasks import QUEUE

log = logging.getLogger("sqlagent.metrics")

SCRAPE_TIMEOUT_S = 3.0
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# No `*_created` series: they double the output and no dashboard of ours reads them.
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "sqlagent_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "sqlagent_http_request_duration_seconds",
    "Time from the request entering the app to its response status being sent",
    ["method", "route"],
)
SSE_STREAMS_OPEN = Gauge(
    "sqlagent_sse_streams_open", "SSE status streams open in this process", multiprocess_mode="livesum"
)


# The labelled children, kept: `labels()` takes a lock and validates its arguments on every call.
# Bounded like the labels themselves (route templates, known methods, status codes).
_counters: dict[tuple[str, str, int], Any] = {}
_histograms: dict[tuple[str, str], Any] = {}


async def count_response(message: Message, scope: Scope) -> None:
    """`before_send`: count every response, also those no route matched (route="unmatched")."""
    if message["type"] != "http.response.start" or scope.get("type") != "http":
        return
    method = str(scope.get("method", ""))
    method = method if method in _METHODS else "OTHER"  # any token is a method: keep the labels bounded
    route = route_of(scope)
    status = message["status"]
    counter = _counters.get((method, route, status))
    if counter is None:
        counter = _counters[(method, route, status)] = HTTP_REQUESTS.labels(method, route, str(status))
    counter.inc()
    begun = started(scope)
    if begun is not None:
        histogram = _histograms.get((method, route))
        if histogram is None:
            histogram = _histograms[(method, route)] = HTTP_DURATION.labels(method, route)
        histogram.observe(time.perf_counter() - begun)


async def _queued_attempts(db: Executor) -> int:
    # Accepted and not yet claimed by a worker, whatever happened to their broker message.
    return int(await db.fetchval("SELECT count(*) FROM attempts WHERE status = 'queued'"))


async def _broker_queue_length(url: str) -> int:
    client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return int(await client.llen(QUEUE))
    finally:
        await client.aclose()


async def _database_metrics(svc: Services) -> list[Metric]:
    families: list[Metric] = []
    try:
        counts = await asyncio.wait_for(attempts.counts_by_terminal_status(svc.db), SCRAPE_TIMEOUT_S)
        queued = await asyncio.wait_for(_queued_attempts(svc.db), SCRAPE_TIMEOUT_S)
    except Exception as exc:  # the scrape still answers with what this process knows
        log.warning("metrics: app database unavailable: %s", exc)
    else:
        total = CounterMetricFamily(
            "sqlagent_attempts",
            "Attempts that reached a terminal status (from the app database)",
            labels=["status", "error_code"],
        )
        for (status, error_code), n in sorted(counts.items()):
            total.add_metric([status, error_code], n)
        depth = GaugeMetricFamily(
            "sqlagent_queue_depth", "Attempts accepted and not yet started (app database)"
        )
        depth.add_metric([], queued)
        families += [total, depth]
    broker_url = svc.settings.broker.broker_url
    if broker_url is not None:
        try:
            length = await asyncio.wait_for(_broker_queue_length(broker_url), SCRAPE_TIMEOUT_S)
        except Exception as exc:
            log.warning("metrics: broker unavailable: %s", exc)
        else:
            messages = GaugeMetricFamily(
                "sqlagent_broker_queue_messages", "Task messages waiting in the broker's queue"
            )
            messages.add_metric([], length)
            families.append(messages)
    return families


class _Families:
    """A one-scrape collector of metric families already read."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def _process_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


class MetricsController(Controller):
    tags = ["system"]

    @get(
        "/metrics",
        operation_id="metrics",
        exclude_from_auth=True,
        media_type=CONTENT_TYPE_LATEST,
        description="Prometheus text exposition",
    )
    async def metrics(self, state: State) -> Response[bytes]:
        families = await _database_metrics(services(state))
        body = generate_latest(_process_registry()) + generate_latest(_Families(families))
        return Response(body, media_type=CONTENT_TYPE_LATEST)
