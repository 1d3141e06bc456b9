"""The SSE status stream of one attempt: history from the event rows, then live events.

Subscribes before reading the history, so nothing falls in between, and de-duplicates by sequence
number. The rows are read again only when the live feed may have missed something: a gap in the
sequence, a RESYNC from the bus (Redis came back), or a quiet heartbeat interval — so a lost
pub/sub message delays an event, never drops it. No database connection is held while waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from litestar.response import ServerSentEventMessage

from api.metrics import SSE_STREAMS_OPEN
from api.state import Services
from shared.attempts import repository as attempts
from shared.attempts.models import Event
from shared.attempts.status import is_terminal

_encoder = msgspec.json.Encoder()
# data=None: a comment alone (Litestar would add an empty `data:` line, which browsers dispatch).
HEARTBEAT = ServerSentEventMessage(comment="heartbeat", data=None)


def _message(event: Event) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=_encoder.encode(event).decode(), event="status", id=str(event.seq))


async def stream(svc: Services, attempt_id: str, after_seq: int) -> AsyncIterator[ServerSentEventMessage]:
    heartbeat_s = svc.settings.sse_heartbeat_s
    SSE_STREAMS_OPEN.inc()
    try:
        last = after_seq
        async with svc.bus.subscribe(attempt_id) as live:
            reread = True
            while True:
                if reread:
                    reread = False
                    # From `last` itself: a resumed stream whose last event was terminal ends here.
                    rows = await attempts.events_after(svc.db, attempt_id, max(last - 1, 0))
                    if last > 0 and not rows:
                        current = await attempts.get(svc.db, attempt_id)
                        if current is None:
                            return  # deleted meanwhile
                        last = min(last, current.seq)  # a Last-Event-ID beyond the attempt's events
                        if last == current.seq and is_terminal(current.status):
                            return
                    for event in rows:
                        if event.seq < last:
                            continue
                        if event.seq == last:
                            if is_terminal(event.status):
                                return
                            continue
                        last = event.seq
                        yield _message(event)
                        if is_terminal(event.status):
                            return
                try:
                    async with asyncio.timeout(heartbeat_s):
                        item = await live.get()
                except TimeoutError:
                    yield HEARTBEAT
                    reread = True
                    continue
                if item is None or item.seq > last + 1:
                    reread = True  # RESYNC, or a message was lost: the rows decide
                    continue
                if item.seq <= last:
                    continue  # already sent (from the rows)
                last = item.seq
                yield _message(item)
                if is_terminal(item.status):
                    return
    finally:
        SSE_STREAMS_OPEN.dec()
