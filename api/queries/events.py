"""The SSE status stream of one attempt: history from the event rows, then live events.

Subscribes before reading the history, so nothing falls in between; de-duplicates by sequence
number; and re-reads the rows whenever it hears nothing for a heartbeat interval, so a lost
pub/sub message only delays an event, never drops it. No database connection is held while
waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from litestar.response import ServerSentEventMessage

from api.state import Services
from shared.attempts import repository as attempts
from shared.attempts.models import Event
from shared.attempts.status import is_terminal

HEARTBEAT_S = 15.0
_encoder = msgspec.json.Encoder()


def _message(event: Event) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=_encoder.encode(event).decode(), event="status", id=str(event.seq))


async def stream(
    svc: Services, attempt_id: str, after_seq: int, *, heartbeat_s: float = HEARTBEAT_S
) -> AsyncIterator[ServerSentEventMessage]:
    last = after_seq
    async with svc.bus.subscribe(attempt_id) as live:
        while True:
            for event in await attempts.events_after(svc.db, attempt_id, last):
                last = event.seq
                yield _message(event)
                if is_terminal(event.status):
                    return
            try:
                event = await asyncio.wait_for(live.get(), timeout=heartbeat_s)
            except TimeoutError:
                yield ServerSentEventMessage(comment="heartbeat")
                continue
            if event.seq == last + 1:
                last = event.seq
                yield _message(event)
                if is_terminal(event.status):
                    return
            # Any other sequence (a gap, or one already sent): the rows decide on the next turn.
