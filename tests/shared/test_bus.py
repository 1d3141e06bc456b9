"""The event bus (one shared pub/sub connection per process, reconnecting after a Redis restart)
and the SSE stream's recovery from the event rows when live messages are lost or reordered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import redis
from support.services import RedisServer

from api.queries.events import EventFeed
from shared.attempts import repository as attempts
from shared.attempts.models import Event
from shared.attempts.status import RUNNING, Status
from shared.db.database import Database
from shared.events.bus import RESYNC, Live, LocalBus, PubSubRelay, RedisBus, channel
from shared.users import repository as users


def _event(attempt_id: str, seq: int, status: str = "generating") -> Event:
    return Event(id=attempt_id, seq=seq, status=status, at=datetime.now(UTC))


async def _next(queue: Live, timeout: float = 5) -> Event | None:
    return await asyncio.wait_for(queue.get(), timeout)


def _pubsub_clients(port: int) -> int:
    client = redis.Redis(port=port)
    try:
        return len(client.client_list(_type="pubsub"))
    finally:
        client.close()


async def test_thousands_of_subscriptions_share_one_connection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path).start()
    bus = RedisBus(server.url)
    try:
        ids = [f"attempt-{i}" for i in range(2000)]
        async with asyncio.TaskGroup() as group:
            entered = asyncio.Event()
            queues: dict[str, Live] = {}
            release = asyncio.Event()

            async def hold(attempt_id: str) -> None:
                async with bus.subscribe(attempt_id) as queue:
                    queues[attempt_id] = queue
                    if len(queues) == len(ids):
                        entered.set()
                    await release.wait()

            for attempt_id in ids:
                group.create_task(hold(attempt_id))
            await asyncio.wait_for(entered.wait(), 20)
            # Every subscription is confirmed before subscribe() returns: a publish now arrives.
            assert _pubsub_clients(server.port) == 1
            await bus.publish(_event(ids[0], 2))
            await bus.publish(_event(ids[-1], 2))
            assert (await _next(queues[ids[0]])).seq == 2  # type: ignore[union-attr]
            assert (await _next(queues[ids[-1]])).seq == 2  # type: ignore[union-attr]
            assert queues[ids[1]].empty()
            release.set()
        # All left: the relay unsubscribed every channel, and its one connection stays.
        probe = redis.Redis(port=server.port)
        for _ in range(100):
            if probe.pubsub_numsub(channel(ids[0]))[0][1] == 0:
                break
            await asyncio.sleep(0.02)
        assert probe.pubsub_numsub(channel(ids[0]), channel(ids[-1])) == [
            (channel(ids[0]).encode(), 0),
            (channel(ids[-1]).encode(), 0),
        ]
        assert bus.relay.channel_count == 0
        probe.close()
    finally:
        await bus.close()
        server.stop()


async def test_two_streams_on_one_attempt_and_one_leaving(redis_url: str) -> None:
    bus = RedisBus(redis_url)
    try:
        async with bus.subscribe("shared-attempt") as first:
            async with bus.subscribe("shared-attempt") as second:
                await bus.publish(_event("shared-attempt", 2))
                assert (await _next(first)).seq == 2  # type: ignore[union-attr]
                assert (await _next(second)).seq == 2  # type: ignore[union-attr]
            await bus.publish(_event("shared-attempt", 3))
            assert (await _next(first)).seq == 3  # type: ignore[union-attr]
        # Leave and come back at once: the server-side subscription is reused or renewed, never lost.
        for seq in (4, 5, 6):
            async with bus.subscribe("shared-attempt") as again:
                await bus.publish(_event("shared-attempt", seq))
                assert (await _next(again)).seq == seq  # type: ignore[union-attr]
    finally:
        await bus.close()


async def test_relay_reconnects_after_a_redis_restart_and_asks_for_a_resync(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path).start()
    restarted = RedisServer(tmp_path, port=server.port)
    bus = RedisBus(server.url)
    try:
        async with bus.subscribe("restart") as queue:
            await bus.publish(_event("restart", 2))
            assert (await _next(queue)).seq == 2  # type: ignore[union-attr]
            server.stop()
            await asyncio.sleep(0.3)
            # A stream that starts during the outage does not wait for Redis.
            started = asyncio.get_running_loop().time()
            async with bus.subscribe("during-outage") as late:
                assert asyncio.get_running_loop().time() - started < 1.0
                restarted.start()
                # Once subscribed again: RESYNC (re-read the rows), then live messages flow.
                assert await _next(queue, 15) is RESYNC
                assert await _next(late, 15) is RESYNC
                await bus.publish(_event("restart", 3))
                assert (await _next(queue)).seq == 3  # type: ignore[union-attr]
        assert bus.relay.reconnects >= 1
    finally:
        await bus.close()
        restarted.stop()
        server.stop()


async def test_an_idle_relay_pings_and_stays_connected(redis_url: str) -> None:
    relay = PubSubRelay(redis_url, ping_s=0.05)
    bus = RedisBus(redis_url)
    try:
        async with relay.subscribe("idle") as queue:
            await asyncio.sleep(0.5)  # ten ping intervals without a message
            await bus.publish(_event("idle", 2))
            assert (await _next(queue)).seq == 2  # type: ignore[union-attr]
        await asyncio.sleep(0.3)  # no channel left at all: PING still answered
        assert relay.reconnects == 0
    finally:
        await relay.close()
        await bus.close()


async def test_local_bus_delivers_across_threads() -> None:
    bus = LocalBus()
    async with bus.subscribe("local") as queue:
        await asyncio.to_thread(lambda: asyncio.run(bus.publish(_event("local", 2))))
        assert (await _next(queue)).seq == 2  # type: ignore[union-attr]


class _LossyBus:
    """A bus whose live feed the test controls: it can drop, reorder or hold back messages."""

    def __init__(self) -> None:
        self.queue: Live = Live()
        self.subscribed = asyncio.Event()

    @asynccontextmanager
    async def subscribe(self, attempt_id: str) -> AsyncIterator[Live]:
        self.subscribed.set()
        yield self.queue


async def _attempt(db: Database) -> str:
    user = await users.create_user(db, username="streamer", password_hash="$argon2id$x", role="user")
    return (await attempts.create(db, user_id=user.id, question="q", data_source="default")).id


class _Message(SimpleNamespace):
    id: str | None
    event: str | None
    comment: str | None


def _parse(chunk: bytes) -> _Message:
    """One SSE message as a client's parser reads it."""
    assert chunk.endswith(b"\r\n\r\n"), chunk
    fields: dict[str, str | None] = {"id": None, "event": None, "comment": None, "data": None}
    for line in chunk.decode().split("\r\n")[:-2]:
        name, _, value = line.partition(": ")
        fields["comment" if name == "" else name] = value
    return _Message(**fields)


async def _collect(svc: Any, attempt_id: str, after: int, out: list[Any]) -> None:
    async for chunk in EventFeed(svc, attempt_id, after).messages():
        out.append(_parse(chunk))


def _statuses(messages: list[Any]) -> list[tuple[str | None, str | None]]:
    return [(m.id, m.comment) for m in messages]


async def test_stream_recovers_a_dropped_and_a_reordered_message_from_the_rows(app_db: Database) -> None:
    attempt_id = await _attempt(app_db)
    bus = _LossyBus()
    svc = SimpleNamespace(db=app_db, bus=bus, settings=SimpleNamespace(sse_heartbeat_s=30.0))
    out: list[Any] = []
    reader = asyncio.create_task(_collect(svc, attempt_id, 0, out))
    await bus.subscribed.wait()

    generating = await attempts.claim(app_db, attempt_id, owner="w", lease_s=30)  # seq 2: never published
    validating = await attempts.transition(app_db, attempt_id, expected=RUNNING, to=Status.VALIDATING)
    executing = await attempts.transition(app_db, attempt_id, expected=RUNNING, to=Status.EXECUTING)
    succeeded = await attempts.transition(app_db, attempt_id, expected=RUNNING, to=Status.SUCCEEDED)
    assert generating and validating and executing and succeeded
    # Seq 3 arrives with 2 missing (a gap: the rows fill it), then 3 again, then 5 before 4.
    for event in (validating, validating, succeeded, executing):
        bus.queue.put_nowait(event)
    await asyncio.wait_for(reader, 5)
    assert [m.id for m in out] == ["1", "2", "3", "4", "5"]
    assert [m.event for m in out] == ["status"] * 5


async def test_stream_rereads_the_rows_on_a_quiet_heartbeat_and_on_resync(app_db: Database) -> None:
    attempt_id = await _attempt(app_db)
    bus = _LossyBus()
    svc = SimpleNamespace(db=app_db, bus=bus, settings=SimpleNamespace(sse_heartbeat_s=0.2))
    out: list[Any] = []
    reader = asyncio.create_task(_collect(svc, attempt_id, 0, out))
    await bus.subscribed.wait()
    await attempts.claim(app_db, attempt_id, owner="w", lease_s=30)  # nothing published at all
    for _ in range(100):
        if any(m.id == "2" for m in out):
            break
        await asyncio.sleep(0.05)
    assert ("2", None) in _statuses(out)
    assert any(m.comment == "heartbeat" for m in out)
    # A RESYNC (Redis came back) makes it read the rows at once.
    await attempts.transition(
        app_db, attempt_id, expected=RUNNING, to=Status.FAILED, error_code="X", detail="d"
    )
    bus.queue.put_nowait(RESYNC)
    await asyncio.wait_for(reader, 5)
    assert [m.id for m in out if m.id] == ["1", "2", "3"]


async def test_resuming_after_the_terminal_event_ends_at_once(app_db: Database) -> None:
    attempt_id = await _attempt(app_db)
    await attempts.cancel_queued(app_db, attempt_id)
    svc = SimpleNamespace(db=app_db, bus=_LossyBus(), settings=SimpleNamespace(sse_heartbeat_s=30))
    out: list[Any] = []
    await asyncio.wait_for(_collect(svc, attempt_id, 2, out), 5)
    assert out == []
    await asyncio.wait_for(_collect(svc, attempt_id, 1, out), 5)
    assert [m.id for m in out] == ["2"]
    # A Last-Event-ID beyond the attempt's events, on a finished attempt: nothing more to send.
    out.clear()
    await asyncio.wait_for(_collect(svc, attempt_id, 99, out), 5)
    assert out == []


async def test_a_hang_up_ends_a_waiting_stream_at_once(app_db: Database) -> None:
    attempt_id = await _attempt(app_db)
    bus = _LossyBus()
    svc = SimpleNamespace(db=app_db, bus=bus, settings=SimpleNamespace(sse_heartbeat_s=30.0))
    feed = EventFeed(svc, attempt_id, 0)  # type: ignore[arg-type]
    out: list[bytes] = []

    async def read() -> None:
        async for chunk in feed.messages():
            out.append(chunk)

    reader = asyncio.create_task(read())
    await bus.subscribed.wait()
    for _ in range(100):  # the history (the `queued` event) first, then it waits for live ones
        if out:
            break
        await asyncio.sleep(0.01)
    feed.hang_up()
    await asyncio.wait_for(reader, 1)  # not after the 30 s heartbeat
    assert [_parse(c).id for c in out] == ["1"]


class _Recorder:
    """A `Watcher` that writes down what happened to its channel."""

    def __init__(self) -> None:
        self.log: list[object] = []
        self.changed = asyncio.Event()

    def _note(self, item: object) -> None:
        self.log.append(item)
        self.changed.set()

    def on_live(self) -> None:
        self._note("live")

    def on_down(self) -> None:
        self._note("down")

    def on_message(self, data: bytes) -> None:
        self._note(data)

    async def until(self, item: object, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            while item not in self.log:
                self.changed.clear()
                await self.changed.wait()


async def test_a_watched_channel_is_live_gets_broadcasts_and_hears_of_an_outage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What the API-token cache relies on: messages while subscribed, `down` as soon as the
    connection is lost (it stops trusting itself), `live` again only once resubscribed."""
    server = RedisServer(tmp_path).start()
    restarted = RedisServer(tmp_path, port=server.port)
    bus = RedisBus(server.url)
    watcher = _Recorder()
    try:
        bus.watch("sqlagent:test:control", watcher)
        await watcher.until("live")
        await bus.broadcast("sqlagent:test:control", b"42")
        await watcher.until(b"42")
        async with bus.subscribe("beside") as queue:  # attempt streams share the connection
            await bus.publish(_event("beside", 2))
            assert (await _next(queue)).seq == 2  # type: ignore[union-attr]
        server.stop()
        await watcher.until("down")
        assert watcher.log[-1] == "down"
        restarted.start()
        watcher.log.clear()
        await watcher.until("live")
        await bus.broadcast("sqlagent:test:control", b"7")
        await watcher.until(b"7")
    finally:
        await bus.close()
        restarted.stop()
        server.stop()


async def test_the_local_bus_watch_is_live_at_once() -> None:
    watcher = _Recorder()
    LocalBus().watch("sqlagent:test:control", watcher)
    assert watcher.log == ["live"]
