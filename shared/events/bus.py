"""Status events after they are committed: Redis pub/sub between processes, or an in-process
bus in embedded mode. Delivery is best effort by design — the event rows in the app database are
the truth, and subscribers re-read them whenever a live message might have been missed.

A subscriber gets an `asyncio.Queue` of `Event`s and of `RESYNC` (None): "something may have been
missed, re-read the rows" — sent after a Redis reconnect, once the subscription is back.

One API process holds thousands of SSE streams, so they share ONE pub/sub connection
(`PubSubRelay`): each stream costs a queue and a set entry, not a socket, and the connection pool
stays bounded (redis-py 8 raises, instead of waiting, when a pool runs out)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from shared.attempts.models import Event

log = logging.getLogger("sqlagent.events")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)

RESYNC = None


class Live:
    """One stream's inbox of `Event`s and RESYNCs: an `asyncio.Queue` for a single consumer in a
    fraction of its memory. Every open SSE stream holds one, and `asyncio.Queue` builds four
    deques (~3 KiB) — a tenth of a stream's whole cost."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Event | None] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Event | None) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Event | None:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def get_nowait(self) -> Event | None:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items


# Publishers (a worker's attempts, the API's cancels) borrow a connection per PUBLISH.
PUBLISH_CONNECTIONS = 32
WRITE_TIMEOUT_S = 5.0
# Channels per SUBSCRIBE/UNSUBSCRIBE command when many streams (re)subscribe at once.
BATCH = 500


def channel(attempt_id: str) -> str:
    return f"sqlagent:attempt:{attempt_id}"


class Watcher(Protocol):
    """A process-wide listener on a control channel (not an attempt's), e.g. credential
    revocations between API processes. Its callbacks run on the event loop and must not block."""

    def on_live(self) -> None:
        """Subscribed (again): messages from now on arrive; earlier ones may have been missed."""

    def on_down(self) -> None:
        """The connection is gone: messages may be missed until the next `on_live`."""

    def on_message(self, data: bytes) -> None: ...


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...
    def subscribe(self, attempt_id: str) -> AbstractAsyncContextManager[Live]: ...
    async def broadcast(self, name: str, data: bytes) -> None: ...
    def watch(self, name: str, watcher: Watcher) -> None: ...
    async def close(self) -> None: ...


class LocalBus:
    """In-process fan-out that works across event loops and threads (the embedded worker runs
    its own loop)."""

    _subscribers: dict[str, set[tuple[asyncio.AbstractEventLoop, Live]]]

    def __init__(self) -> None:
        self._subscribers = defaultdict(set)
        self._lock = threading.Lock()

    async def publish(self, event: Event) -> None:
        with self._lock:
            targets = list(self._subscribers.get(event.id, ()))
        for loop, queue in targets:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    @asynccontextmanager
    async def subscribe(self, attempt_id: str) -> AsyncIterator[Live]:
        entry = (asyncio.get_running_loop(), Live())
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

    async def broadcast(self, name: str, data: bytes) -> None:
        # One process: whoever broadcasts has already acted locally.
        return None

    def watch(self, name: str, watcher: Watcher) -> None:
        watcher.on_live()

    async def close(self) -> None:
        return None


# One bus per process in embedded mode: the API and its in-process worker must share it.
LOCAL_BUS = LocalBus()


class _Channel:
    __slots__ = ("queues", "ready", "resync")

    def __init__(self) -> None:
        self.queues: set[Live] = set()
        # Resolved once the server confirmed the subscription (or the connection dropped).
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Send RESYNC to the queues when the (re)subscription is confirmed.
        self.resync = False

    def release(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def push(self, item: Event | None) -> None:
        for queue in self.queues:
            queue.put_nowait(item)


def _batches(names: list[bytes]) -> Iterator[list[bytes]]:
    for start in range(0, len(names), BATCH):
        yield names[start : start + BATCH]


class PubSubRelay:
    """One pub/sub connection per process, multiplexing every subscribed attempt channel.

    A reader task dispatches messages to the subscribers' queues; a writer task reconciles the
    channels the streams want with what the connection was told (batched SUBSCRIBE/UNSUBSCRIBE)
    and pings when quiet. When the connection fails it reconnects with backoff, subscribes again
    to every wanted channel and sends RESYNC to their queues once each is confirmed, so nothing
    published during the outage is lost for good. Entering and leaving a subscription is
    synchronous bookkeeping, so a client disconnect (a cancellation) can never leave it half done.
    """

    def __init__(
        self, url: str, *, ping_s: float = 30.0, confirm_s: float = 3.0, reconnect_max_s: float = 5.0
    ) -> None:
        # No socket_timeout: redis-py would wrap each write in 3.11's wait_for, which can swallow a
        # cancellation; writes get an asyncio.timeout here instead, reads block (pings detect death).
        self._pool = ConnectionPool.from_url(url, socket_connect_timeout=3, socket_timeout=None)
        self._ping_s = ping_s
        self._confirm_s = confirm_s
        self._reconnect_max_s = reconnect_max_s
        self._channels: dict[bytes, _Channel] = {}
        self._watchers: dict[bytes, Watcher] = {}
        self._server: set[bytes] = set()  # what the current connection was told to subscribe
        self._inflight: dict[bytes, int] = defaultdict(int)  # SUBSCRIBEs not yet confirmed
        self._dirty = asyncio.Event()
        self._live = False  # a connection is up
        self._down = False  # the last connection attempt failed: don't make new streams wait
        self._last_read = 0.0
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def _wake(self) -> None:
        self._dirty.set()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="sqlagent-pubsub-relay")

    def watch(self, name: str, watcher: Watcher) -> None:
        """Keep `name` subscribed for the life of the relay and feed its messages to `watcher`."""
        self._watchers[name.encode()] = watcher
        self._wake()
        self._ensure_running()

    @asynccontextmanager
    async def subscribe(self, attempt_id: str) -> AsyncIterator[Live]:
        name = channel(attempt_id).encode()
        queue = Live()
        entry = self._channels.get(name)
        if entry is None:
            entry = self._channels[name] = _Channel()
            if self._live and name in self._server and not self._inflight.get(name):
                entry.release()  # still subscribed on the server from a stream that just left
            else:
                self._wake()
        entry.queues.add(queue)
        self._ensure_running()
        try:
            if not entry.ready.done():
                if self._down:
                    entry.resync = True
                else:
                    try:
                        async with asyncio.timeout(self._confirm_s):
                            await asyncio.shield(entry.ready)
                    except TimeoutError:
                        entry.resync = True
            yield queue
        finally:
            entry.queues.discard(queue)
            if not entry.queues and self._channels.get(name) is entry:
                del self._channels[name]
                self._wake()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            conn = self._pool.make_connection()
            try:
                await conn.connect()
                self._server.clear()
                self._inflight.clear()
                self._live, self._down = True, False
                delay = 0.1
                self._wake()
                await self._session(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the connection: reconnect
                log.warning("pub/sub relay: %s; reconnecting", exc or type(exc).__name__)
            finally:
                self._live = False
                for watcher in self._watchers.values():
                    watcher.on_down()
                await conn.disconnect(nowait=True)
            self._down = True
            self.reconnects += 1
            for entry in self._channels.values():
                entry.resync = True
                entry.release()  # let waiting streams go on: the RESYNC will follow
                entry.ready = asyncio.get_running_loop().create_future()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max_s)

    async def _session(self, conn: AbstractConnection) -> None:
        tasks = [asyncio.create_task(self._write(conn)), asyncio.create_task(self._read(conn))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _write(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        ping_sent: float | None = None
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                async with asyncio.timeout(self._ping_s):
                    await self._dirty.wait()
            except TimeoutError:
                if ping_sent is not None and self._last_read < ping_sent:
                    raise ConnectionError(f"no reply from Redis for {self._ping_s:g} s") from None
                ping_sent = loop.time()
                await self._send(conn, "PING")
                continue
            self._dirty.clear()
            gone = [n for n in self._server if n not in self._channels and n not in self._watchers]
            new = [n for n in (*self._channels, *self._watchers) if n not in self._server]
            for batch in _batches(gone):
                self._server.difference_update(batch)
                await self._send(conn, "UNSUBSCRIBE", *batch)
            for batch in _batches(new):
                self._server.update(batch)
                for name in batch:
                    self._inflight[name] += 1
                await self._send(conn, "SUBSCRIBE", *batch)

    async def _send(self, conn: AbstractConnection, *command: str | bytes) -> None:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await conn.send_command(*command, check_health=False)

    async def _read(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            reply = await conn.read_response(timeout=math.inf, disconnect_on_error=False, push_request=True)
            self._last_read = loop.time()
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return  # PONG
        kind, name = reply[0], reply[1]
        watcher = self._watchers.get(name)
        if watcher is not None:
            if kind == b"message":
                watcher.on_message(reply[2])
            elif kind == b"subscribe":
                self._inflight.pop(name, None)
                watcher.on_live()
            return
        if kind == b"message":
            entry = self._channels.get(name)
            if entry is None:
                return
            try:
                event = _decoder.decode(reply[2])
            except msgspec.DecodeError as exc:
                log.warning("pub/sub relay: undecodable message on %s: %s", name, exc)
                return
            entry.push(event)
        elif kind == b"subscribe":
            left = self._inflight[name] - 1
            if left > 0:
                self._inflight[name] = left
                return
            self._inflight.pop(name, None)
            entry = self._channels.get(name)
            if entry is not None and name in self._server:
                entry.release()
                if entry.resync:
                    entry.resync = False
                    entry.push(RESYNC)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._pool.aclose()


class RedisBus:
    def __init__(self, url: str, *, max_connections: int = PUBLISH_CONNECTIONS) -> None:
        self.url = url
        # A blocking pool: a burst of publishes waits for a connection instead of failing.
        self.client = aioredis.Redis.from_pool(
            BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=5,
                socket_timeout=5,
                socket_connect_timeout=3,
                # A pooled connection can be stale after a Redis restart: reconnect and try again.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            )
        )
        self._relay: PubSubRelay | None = None

    @property
    def relay(self) -> PubSubRelay:
        if self._relay is None:
            self._relay = PubSubRelay(self.url)
        return self._relay

    async def publish(self, event: Event) -> None:
        await self.client.publish(channel(event.id), _encoder.encode(event))

    def subscribe(self, attempt_id: str) -> AbstractAsyncContextManager[Live]:
        return self.relay.subscribe(attempt_id)

    async def broadcast(self, name: str, data: bytes) -> None:
        await self.client.publish(name, data)

    def watch(self, name: str, watcher: Watcher) -> None:
        self.relay.watch(name, watcher)

    async def close(self) -> None:
        if self._relay is not None:
            await self._relay.close()
        await self.client.aclose()


def make_bus(redis_url: str | None) -> EventBus:
    return LOCAL_BUS if redis_url is None else RedisBus(redis_url)
