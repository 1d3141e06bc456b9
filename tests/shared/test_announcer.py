"""The worker's announcer: committed events reach subscribers in the order they were announced,
batched, without the attempt waiting; a Redis failure is logged and costs nothing else."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import msgspec
import redis.asyncio as aioredis
from support.services import RedisServer, free_port

from shared.attempts.models import Event
from shared.events.bus import LocalBus, RedisBus, channel
from worker.announce import Announcer

STATUSES = ["generating", "validating", "executing", "succeeded"]


def _events(attempt_ids: list[str]) -> list[Event]:
    """Every attempt's four status changes, interleaved across attempts as a busy worker makes them."""
    return [
        Event(id=a, seq=seq, status=status, at=datetime.now(UTC))
        for seq, status in enumerate(STATUSES, start=2)
        for a in attempt_ids
    ]


async def test_redis_subscribers_get_every_event_in_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path).start()
    bus = RedisBus(server.url)
    listener = aioredis.Redis.from_url(server.url)
    pubsub = listener.pubsub()
    announcer = Announcer(bus)
    try:
        ids = [f"a{i}" for i in range(50)]
        await pubsub.psubscribe(channel("*"))
        assert (await pubsub.get_message(timeout=5))["type"] == "psubscribe"  # type: ignore[index]
        events = _events(ids)
        for event in events:  # synchronous: nothing here waits for Redis
            announcer.announce(event)
        await asyncio.wait_for(announcer.flush(), 5)
        received = []
        while len(received) < len(events):
            message = await pubsub.get_message(timeout=5)
            assert message is not None, f"{len(received)} of {len(events)} arrived"
            if message["type"] == "pmessage":
                received.append(msgspec.json.decode(message["data"], type=Event))
        assert received == events
        for attempt_id in ids:
            assert [e.seq for e in received if e.id == attempt_id] == [2, 3, 4, 5]
    finally:
        await announcer.close()
        await pubsub.aclose()
        await listener.aclose()
        await bus.close()
        server.stop()


async def test_a_redis_failure_is_logged_and_later_events_still_go_out(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    bus = RedisBus(f"redis://127.0.0.1:{port}/0")
    announcer = Announcer(bus)
    server = None
    try:
        with caplog.at_level(logging.WARNING, logger="sqlagent.worker"):
            announcer.announce(_events(["lost"])[0])
            await asyncio.wait_for(announcer.flush(), 20)
        assert "could not announce 1 status change(s), the first lost generating" in caplog.text

        server = RedisServer(tmp_path, port=port).start()
        listener = aioredis.Redis.from_url(server.url)
        pubsub = listener.pubsub()
        await pubsub.subscribe(channel("back"))
        await pubsub.get_message(timeout=5)
        event = _events(["back"])[0]
        announcer.announce(event)
        await asyncio.wait_for(announcer.flush(), 5)
        message = None
        while message is None or message["type"] != "message":
            message = await pubsub.get_message(timeout=5)
            assert message is not None
        assert msgspec.json.decode(message["data"], type=Event) == event
        await pubsub.aclose()
        await listener.aclose()
    finally:
        await announcer.close()
        await bus.close()
        if server is not None:
            server.stop()


async def test_local_bus_in_order_and_flush_when_idle() -> None:
    bus = LocalBus()
    announcer = Announcer(bus)
    await asyncio.wait_for(announcer.flush(), 1)  # nothing announced yet: returns at once
    async with bus.subscribe("a") as queue:
        events = _events(["a", "b"])
        for event in events:
            announcer.announce(event)
        await asyncio.wait_for(announcer.flush(), 5)
        got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert got == [e for e in events if e.id == "a"]
    await announcer.close()


async def test_flush_waits_for_what_was_announced_before_it_not_after() -> None:
    release = asyncio.Event()
    published: list[int] = []

    class SlowBus(LocalBus):
        async def publish(self, event: Event) -> None:
            await release.wait()
            published.append(event.seq)

    announcer = Announcer(SlowBus())
    first = _events(["a"])
    announcer.announce(first[0])
    await asyncio.sleep(0)  # the announcer takes seq 2 and blocks on it
    announcer.announce(first[1])  # seq 3: the next batch
    flushing = asyncio.create_task(announcer.flush())
    await asyncio.sleep(0.01)
    assert not flushing.done()
    release.set()
    await asyncio.wait_for(flushing, 5)
    assert published == [2, 3]
    # Announcing more while someone waits does not hold that waiter up.
    release.clear()
    announcer.announce(first[2])
    flushing = asyncio.create_task(announcer.flush())
    await asyncio.sleep(0)
    announcer.announce(first[3])
    release.set()
    await asyncio.wait_for(flushing, 5)
    assert 4 in published
    await announcer.close()
    assert published == [2, 3, 4, 5]
