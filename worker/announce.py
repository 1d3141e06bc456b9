"""Announcing committed status changes off the attempts' critical path.

An attempt used to wait for each PUBLISH before its next step: a Redis round trip per status, ~5
per attempt. Announcements are best effort by design (the event rows are the truth and
subscribers re-read them whenever a live message may have been missed, shared/events/bus.py), so
nothing needs to wait for them — only their order and their place after the commit matter:

  * `announce` is called only after the event's row is committed, so nothing is announced early;
  * one task publishes them in the order they were announced, so an attempt's events go out in
    the order its steps committed them;
  * whatever queued up while a batch was being sent goes out as the next batch, in one pipeline
    (one write, one round trip for all of them);
  * a failed batch is logged and dropped: subscribers recover from the rows;
  * `flush` waits until everything announced so far was sent, however busy the announcer stays
    with later events: an attempt ends with it, so its terminal status is out when its task ends
    (and before Celery's own end-of-task work competes for the GIL), and a warm shutdown calls it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import msgspec

from shared.attempts.models import Event
from shared.events.bus import EventBus, RedisBus, channel

log = logging.getLogger("sqlagent.worker")

# Announcements waiting while Redis hangs are dropped beyond this (oldest first): a stale status is
# worth less than memory, and the rows have them all.
MAX_PENDING = 10_000
_encode = msgspec.json.Encoder().encode


class Announcer:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._pending: deque[Event] = deque()
        self._wake = asyncio.Event()
        # Resolved when the batch holding the pending events is sent; and the one being sent.
        self._pending_sent: asyncio.Future[None] | None = None
        self._sending: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def announce(self, event: Event) -> None:
        """Queue a committed event for publishing; returns at once. Call on the runtime's loop."""
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(event)
        loop = asyncio.get_running_loop()
        if self._pending_sent is None:
            self._pending_sent = loop.create_future()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="sqlagent-announcer")

    async def flush(self) -> None:
        """Wait until every event announced so far was published (or failed to be)."""
        waiting = self._pending_sent if self._pending else self._sending
        if waiting is not None:
            await asyncio.shield(waiting)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                self._sending, self._pending_sent = self._pending_sent, None
                try:
                    await self._publish(batch)
                finally:
                    if self._sending is not None and not self._sending.done():
                        self._sending.set_result(None)
                    self._sending = None

    async def _publish(self, batch: list[Event]) -> None:
        try:
            if isinstance(self._bus, RedisBus):
                async with self._bus.client.pipeline(transaction=False) as pipe:
                    for event in batch:
                        pipe.publish(channel(event.id), _encode(event))
                    await pipe.execute()
            else:
                for event in batch:
                    await self._bus.publish(event)
        except Exception as exc:  # committed already; subscribers re-read the rows
            first = batch[0]
            log.warning(
                "could not announce %d status change(s), the first %s %s: %s",
                len(batch),
                first.id,
                first.status,
                exc,
            )
