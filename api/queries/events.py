"""The SSE status stream of one attempt: history from the event rows, then live events.

Subscribes before reading the history, so nothing falls in between, and de-duplicates by sequence
number. The rows are read again only when the live feed may have missed something: a gap in the
sequence, a RESYNC from the bus (Redis came back), or a quiet heartbeat interval — so a lost
pub/sub message delays an event, never drops it. No database connection is held while waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from api.metrics import SSE_STREAMS_OPEN
from api.state import Services
from shared.attempts import repository as attempts
from shared.attempts.models import Event
from shared.attempts.status import is_terminal
from shared.events.bus import RESYNC, Live

_encoder = msgspec.json.Encoder()
# A comment alone: clients keep the connection and dispatch nothing.
HEARTBEAT = b": heartbeat\r\n\r\n"


def encode(event: Event) -> bytes:
    """One `status` message, laid out as Litestar's ServerSentEventMessage would (the JSON has no
    line breaks, so it is one `data:` line)."""
    return b"id: %d\r\nevent: status\r\ndata: %s\r\n\r\n" % (event.seq, _encoder.encode(event))


class EventFeed:
    """The messages of one attempt's stream (`api.sse.Feed`)."""

    __slots__ = ("_after_seq", "_attempt_id", "_live", "_svc", "gone")

    def __init__(self, svc: Services, attempt_id: str, after_seq: int) -> None:
        self._svc = svc
        self._attempt_id = attempt_id
        self._after_seq = after_seq
        self._live: Live | None = None
        self.gone = False

    def hang_up(self) -> None:
        self.gone = True
        if self._live is not None:
            self._live.put_nowait(RESYNC)  # wakes the wait below, which then sees `gone`

    async def messages(self) -> AsyncIterator[bytes]:
        svc, attempt_id = self._svc, self._attempt_id
        heartbeat_s = svc.settings.sse_heartbeat_s
        SSE_STREAMS_OPEN.inc()
        try:
            last = self._after_seq
            async with svc.bus.subscribe(attempt_id) as live:
                self._live = live
                reread = True
                while not self.gone:
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
                            yield encode(event)
                            if is_terminal(event.status):
                                return
                    try:
                        async with asyncio.timeout(heartbeat_s):
                            item = await live.get()
                    except TimeoutError:
                        yield HEARTBEAT
                        reread = True
                        continue
                    if self.gone:
                        return
                    if item is None or item.seq > last + 1:
                        reread = True  # RESYNC, or a message was lost: the rows decide
                        continue
                    if item.seq <= last:
                        continue  # already sent (from the rows)
                    last = item.seq
                    yield encode(item)
                    if is_terminal(item.status):
                        return
        finally:
            self._live = None
            SSE_STREAMS_OPEN.dec()
