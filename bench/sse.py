"""Scenario 4: 2,000 concurrent SSE streams on one API process.

Per run: a fresh API process; 2,000 attempts queued (no worker yet); a stream opened on each
(until its `queued` event arrives). Memory: the API's resident set before and after opening them.
Then one worker drains the queue with an instant LLM, and every stream records how late its
terminal event arrived: arrival time minus the event's own `at` (written by the worker just
before it commits and publishes), so the figure covers commit, pub/sub, relay and delivery."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

from bench.client import TERMINAL, Connection, SseParser
from bench.config import Config
from bench.report import Report, Target, percentile
from bench.stack import INSTANT_SELECT_1, Stack, free_port, rss_kib
from bench.worker import submit_many

SCENARIO = "4 SSE"
OPEN_AT_ONCE = 100  # streams being opened concurrently (the rest wait their turn)
WARMUP = 50


@dataclass
class Stream:
    path: str
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    delay_ms: float | None = None
    final: str = ""


async def follow(stream: Stream, port: int, auth: dict[str, str], gate: asyncio.Semaphore) -> None:
    """Open the stream (holding `gate` until the first event), then read it to its end."""
    await gate.acquire()
    released = False
    conn = await Connection.open("127.0.0.1", port)
    try:
        status, body = await conn.stream("GET", stream.path, headers=auth)
        if status != 200:
            raise RuntimeError(f"events answered {status}")
        parser = SseParser()
        async for piece in body:
            for event in parser.feed(piece):
                if event.event != "status":
                    continue
                if not released:
                    released = True
                    gate.release()
                    stream.opened.set()
                data = event.json()
                if data["status"] in TERMINAL and not stream.final:
                    stream.final = data["status"]
                    stream.delay_ms = (event.received - datetime.fromisoformat(data["at"]).timestamp()) * 1000
    finally:
        if not released:
            gate.release()
            stream.opened.set()
        await conn.close()


async def open_streams(
    paths: list[str], port: int, auth: dict[str, str]
) -> tuple[list[Stream], list[asyncio.Task[None]], float]:
    """Streams on these paths, each opened to its first event; and the seconds that took."""
    gate = asyncio.Semaphore(OPEN_AT_ONCE)
    streams = [Stream(path) for path in paths]
    started = time.perf_counter()
    tasks = [asyncio.create_task(follow(s, port, auth, gate)) for s in streams]
    await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 120)
    return streams, tasks, time.perf_counter() - started


async def close_streams(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _paths(ids: list[str]) -> list[str]:
    return [f"/api/queries/{i}/events" for i in ids]


async def _floor_once(stack: Stack, count: int, *, raw: bool) -> float:
    """KiB per stream on a bare SSE app (bench/sse_floor.py): Litestar, or plain ASGI when `raw`."""
    port = free_port()
    command = [sys.executable, "-m", "bench.sse_floor", "--port", str(port)] + (["--raw"] if raw else [])
    floor = stack.spawn("sse-floor-raw" if raw else "sse-floor", command, stack.env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                await (await Connection.open("127.0.0.1", port)).close()
                break
            except OSError:
                if time.monotonic() > deadline or not floor.alive():
                    raise RuntimeError(f"the SSE floor app did not start:\n{floor.tail()}") from None
                await asyncio.sleep(0.1)
        _, tasks, _ = await open_streams([f"/events/w{i}" for i in range(WARMUP)], port, {})
        await close_streams(tasks)
        await asyncio.sleep(1)
        before = rss_kib(floor.pid)
        _, tasks, _ = await open_streams([f"/events/s{i}" for i in range(count)], port, {})
        await asyncio.sleep(1)
        after = rss_kib(floor.pid)
        await close_streams(tasks)
        return (after - before) / count
    finally:
        floor.stop()


async def _warm_up(stack: Stack) -> None:
    """Open and close a few streams: lazy imports and the pub/sub connection are not per stream."""
    ids = await submit_many(stack, WARMUP)
    _, tasks, _ = await open_streams(_paths(ids), stack.api_port, stack.auth)
    await close_streams(tasks)
    await stack.flush()


async def _once(stack: Stack, cfg: Config) -> dict[str, float]:
    stack.stop_worker()
    stack.stop_api()
    await stack.flush()
    api = await stack.start_api()
    await _warm_up(stack)
    count = cfg.sse_streams
    ids = await submit_many(stack, count)
    await asyncio.sleep(1)
    before = rss_kib(api.pid)
    streams, tasks, open_s = await open_streams(_paths(ids), stack.api_port, stack.auth)
    await asyncio.sleep(1)
    after = rss_kib(api.pid)
    await stack.start_worker()
    done, pending = await asyncio.wait(tasks, timeout=count / 50 + 60)
    for task in pending:
        task.cancel()
    failures = [t.exception() for t in done if t.exception() is not None]
    stack.stop_worker()
    delays = [s.delay_ms for s in streams if s.delay_ms is not None]
    if not delays:
        raise RuntimeError(f"no stream saw its terminal event ({failures[:3]})")
    return {
        "extra_mib": (after - before) / 1024,
        "kib_per_stream": (after - before) / count,
        "open_s": open_s,
        "p50": percentile(delays, 50),
        "p99": percentile(delays, 99),
        "complete": len(delays),
        "errors": len(failures) + len(pending),
        "rss_before_mib": before / 1024,
        "floor_kib": await _floor_once(stack, count, raw=False),
        "raw_floor_kib": await _floor_once(stack, count, raw=True),
    }


async def run(stack: Stack, report: Report, cfg: Config) -> None:
    stack.set_llm(INSTANT_SELECT_1)
    runs = [await _once(stack, cfg) for _ in range(cfg.repeats)]
    n = cfg.sse_streams
    complete = ", ".join(f"{int(r['complete'])}/{n}" for r in runs)
    errors = sum(int(r["errors"]) for r in runs)
    report.add(
        SCENARIO,
        f"API memory for {n:,} streams",
        "MiB",
        [r["extra_mib"] for r in runs],
        target=Target("<=", 50),
        note=f"RSS before {runs[0]['rss_before_mib']:.0f} MiB "
        f"(a fresh API process, after {WARMUP} warm-up streams)",
    )
    report.add(SCENARIO, "memory per stream", "KiB", [r["kib_per_stream"] for r in runs])
    report.add(
        SCENARIO,
        "  floor: bare Litestar SSE stream",
        "KiB",
        [r["floor_kib"] for r in runs],
        note="bench/sse_floor.py: one event, then waiting; no auth, database or pub/sub",
    )
    report.add(SCENARIO, "  floor: plain ASGI stream on uvicorn", "KiB", [r["raw_floor_kib"] for r in runs])
    report.add(
        SCENARIO,
        f"open {n:,} streams (to first event)",
        "s",
        [r["open_s"] for r in runs],
        note=f"{OPEN_AT_ONCE} opening at a time",
    )
    report.add(SCENARIO, "terminal event delay p50", "ms", [r["p50"] for r in runs])
    report.add(
        SCENARIO,
        "terminal event delay p99",
        "ms",
        [r["p99"] for r in runs],
        target=Target("<=", 200),
        note=f"one worker draining {n:,} attempts; terminal events seen: {complete}"
        + (f"; {errors} stream errors" if errors else ""),
    )
