"""Status events after they are committed: Redis pub/sub between processes, or an in-process
bus in embedded mode. Delivery is best effort by design — the event rows in the app database are
the truth, and subscribers re-read them whenever a live message might have been missed."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import msgspec
import redis.asyncio as aioredis

from shared.attempts.models import Event

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def channel(attempt_id: str) -> str:
    return f"sqlagent:attempt:{attempt_id}"


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...
    def subscribe(self, attempt_id: str) -> AsyncIterator[asyncio.Queue[Event]]: ...
    async def close(self) -> None: ...


class LocalBus:
    """In-process fan-out that works across event loops and threads (the embedded worker runs
    its own loop)."""

    _subscribers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]]]

    def __init__(self) -> None:
        self._subscribers = defaultdict(set)
        self._lock = threading.Lock()

    async def publish(self, event: Event) -> None:
        with self._lock:
            targets = list(self._subscribers.get(event.id, ()))
        for loop, queue in targets:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    @asynccontextmanager
    async def subscribe(self, attempt_id: str) -> AsyncIterator[asyncio.Queue[Event]]:
        entry = (asyncio.get_running_loop(), asyncio.Queue[Event]())
        with self._lock:
            self._subscribers[attempt_id].add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                subscribers = self._subscribers[attempt_id]
                subscribers.discard(entry)
                if not subscribers:
                    del self._subscribers[attempt_id]

    async def close(self) -> None:
        return None


# One bus per process in embedded mode: the API and its in-process worker must share it.
LOCAL_BUS = LocalBus()


class RedisBus:
    def __init__(self, url: str, *, max_connections: int = 50) -> None:
        # redis-py 8 raises when the pool runs out instead of waiting: bound it explicitly and
        # keep long-lived subscriptions off it (one connection per subscriber).
        self.url = url
        self.client = aioredis.Redis.from_url(
            url, max_connections=max_connections, socket_timeout=5, socket_connect_timeout=3
        )

    async def publish(self, event: Event) -> None:
        await self.client.publish(channel(event.id), _encoder.encode(event))

    @asynccontextmanager
    async def subscribe(self, attempt_id: str) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        pubsub = self.client.pubsub()
        await pubsub.subscribe(channel(attempt_id))

        async def pump() -> None:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    queue.put_nowait(_decoder.decode(message["data"]))

        task = asyncio.create_task(pump())
        try:
            yield queue
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pubsub.aclose()

    async def close(self) -> None:
        await self.client.aclose()


def make_bus(redis_url: str | None) -> EventBus:
    return LOCAL_BUS if redis_url is None else RedisBus(redis_url)  # type: ignore[return-value]
