"""What the API and the workers agree on about Celery: task names, the queue, and how task
messages are published. The API sends tasks by name and never imports worker code.

Publishing is asynchronous: on a Redis broker, task messages (Celery's protocol 2 in kombu's Redis
envelope, exactly what `send_task` would write) go out with one LPUSH per batch from the event loop,
instead of a blocking `send_task` call per attempt. In embedded mode they go through kombu's
in-memory transport, which does no I/O."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from celery import Celery

from shared.logs import current_request_id

RUN_ATTEMPT = "attempts.run"
# A message header, not an argument: Flower shows a task's arguments, which stay the attempt id.
REQUEST_ID_HEADER = "sqlagent_request_id"
QUEUE = "sqlagent"
# Embedded mode: kombu's in-memory transport, shared by every Celery app in the process.
EMBEDDED_BROKER = "memory://localhost/"
# After a failed publish, wait this long before trying the broker again (the sweeper catches up).
BROKER_BACKOFF_S = 2.0
BATCH_MAX = 256

log = logging.getLogger("sqlagent.dispatch")
_encoder = msgspec.json.Encoder()
_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


def celery_config(broker_url: str | None, *, attempt_deadline_s: float) -> dict[str, Any]:
    """Settings every Celery app of ours shares (the worker's adds pool and event settings)."""
    return {
        "broker_url": broker_url or EMBEDDED_BROKER,
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "broker_transport_options": (
            # The in-memory transport polls; its 1 s default would be most of an attempt's latency.
            {"polling_interval": 0.01}
            if broker_url is None
            else {
                # A message whose worker died is redelivered after this; it must exceed the
                # longest attempt (the lease reaper normally acts long before).
                "visibility_timeout": int(attempt_deadline_s * 2 + 60),
                "socket_timeout": 3,
                "socket_connect_timeout": 3,
            }
        ),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
    }


def task_message(attempt_id: str, *, headers: dict[str, str] | None = None) -> bytes:
    """One `attempts.run` message as kombu's Redis transport stores it (protocol 2, JSON body)."""
    task_id = str(uuid.uuid4())
    body = _encoder.encode(
        [[attempt_id], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    )
    return _encoder.encode(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": RUN_ATTEMPT,
                "id": task_id,
                "shadow": None,
                "eta": None,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": repr([attempt_id]),
                "kwargsrepr": "{}",
                "origin": _ORIGIN,
                "ignore_result": True,
                "replaced_task_nesting": 0,
                "stamped_headers": None,
                "stamps": {},
                **(headers or {}),
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": QUEUE},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


class Publisher:
    """Publishes `attempts.run` messages for a batch of attempts; raises when the broker fails."""

    def __init__(self, broker_url: str | None, *, attempt_deadline_s: float) -> None:
        self._redis = (
            aioredis.Redis.from_url(broker_url, max_connections=4, socket_timeout=3, socket_connect_timeout=2)
            if broker_url
            else None
        )
        self._celery: Celery | None = None
        if broker_url is None:
            self._celery = Celery("sqlagent-publisher", set_as_current=False)
            self._celery.conf.update(celery_config(None, attempt_deadline_s=attempt_deadline_s))

    async def publish(
        self,
        attempt_ids: Sequence[str],
        *,
        headers: dict[str, str] | None = None,
        request_ids: Mapping[str, str] | None = None,
    ) -> None:
        """`request_ids`: the submitting request's id per attempt, for the worker's log lines."""
        if not attempt_ids:
            return

        def headers_of(attempt_id: str) -> dict[str, str] | None:
            rid = (request_ids or {}).get(attempt_id)
            return {**(headers or {}), REQUEST_ID_HEADER: rid} if rid else headers

        if self._redis is not None:
            # LPUSH + the worker's BRPOP keep the batch in order.
            await self._redis.lpush(QUEUE, *(task_message(i, headers=headers_of(i)) for i in attempt_ids))
            return
        assert self._celery is not None
        for attempt_id in attempt_ids:  # in-memory transport: no I/O, no reason to leave the loop
            self._celery.send_task(
                RUN_ATTEMPT, args=[attempt_id], queue=QUEUE, headers=headers_of(attempt_id)
            )

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        if self._celery is not None:
            self._celery.close()


class Dispatcher:
    """The API's hand-off to the broker, off the request path.

    The attempt row is committed before `dispatch()` is called, so the request can answer 202 at
    once; a background task publishes whatever accumulated in one batch. The rows' `dispatched_at`
    is the outbox: a row still NULL is published by the sweeper within its next rounds, a row
    dispatched long ago and still queued is published again (a broker that lost it).

    Rows from the intake are inserted already marked (`marked=True`), which spares an UPDATE per
    batch on the happy path; if their publish fails they are unmarked, so the sweeper takes them
    as soon as the broker is back, and if this process dies between commit and publish the
    re-dispatch rule catches them (SQLAGENT_REDISPATCH_AFTER_S). Other rows are marked after
    their publish. Nothing is lost, at worst delayed or published twice (claims are conditional)."""

    def __init__(
        self,
        publisher: Publisher,
        mark_dispatched: Callable[[list[str]], Awaitable[None]],
        mark_undispatched: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self.publisher = publisher
        self._mark_dispatched = mark_dispatched
        self._mark_undispatched = mark_undispatched
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._request_ids: dict[str, str] = {}
        self._premarked: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._quiet_until = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlagent-dispatcher")

    def dispatch(self, attempt_id: str, request_id: str | None = None, *, marked: bool = False) -> None:
        """`request_id`: the submitting request's, which travels with the task message (by
        default the current context's). `marked`: the row was inserted with `dispatched_at` set."""
        if request_id is None:
            request_id = current_request_id()
        if request_id is not None:
            self._request_ids[attempt_id] = request_id
        if marked:
            self._premarked.add(attempt_id)
        self._queue.put_nowait(attempt_id)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._flush(batch)

    async def _flush(self, batch: list[str]) -> None:
        request_ids = {i: rid for i in batch if (rid := self._request_ids.pop(i, None)) is not None}
        premarked = [i for i in batch if i in self._premarked]
        self._premarked.difference_update(premarked)
        if time.monotonic() < self._quiet_until:
            # The broker failed moments ago; the sweeper will publish these.
            await self._unmark(premarked)
            return
        try:
            await self.publisher.publish(batch, request_ids=request_ids)
        except Exception as exc:  # any broker failure: the rows must read as undispatched
            self._quiet_until = time.monotonic() + BROKER_BACKOFF_S
            log.warning("could not publish %d attempt(s); the sweeper will: %s", len(batch), exc)
            await self._unmark(premarked)
            return
        skip = set(premarked)
        unmarked = [i for i in batch if i not in skip]
        if not unmarked:
            return
        try:
            await self._mark_dispatched(unmarked)
        except Exception as exc:  # harmless: at worst the sweeper publishes a duplicate
            log.warning("could not mark %d attempt(s) dispatched: %s", len(unmarked), exc)

    async def _unmark(self, attempt_ids: list[str]) -> None:
        if not attempt_ids:
            return
        try:
            await self._mark_undispatched(attempt_ids)
        except Exception as exc:  # the app database is failing too: the re-dispatch rule remains
            log.warning(
                "could not mark %d unpublished attempt(s) undispatched; they are published again "
                "after SQLAGENT_REDISPATCH_AFTER_S: %s",
                len(attempt_ids),
                exc,
            )

    async def close(self) -> None:
        """Publish what is pending (best effort), then stop."""
        pending: list[str] = []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        if pending:
            await self._flush(pending)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
