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
  * `flush` waits until everything announced so far was sent (a warm shutdown calls it).
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
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def announce(self, event: Event) -> None:
        """Queue a committed event for publishing; returns at once. Call on the runtime's loop."""
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(event)
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sqlagent-announcer")

    async def flush(self) -> None:
        """Wait until every event announced so far was published (or failed to be)."""
        if self._task is not None and not self._task.done():
            await self._idle.wait()

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
                await self._publish(batch)
            self._idle.set()

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
