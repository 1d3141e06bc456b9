"""Scenario 2: end-to-end overhead, submit → terminal SSE event, with an instant LLM answering
`SELECT 1`: what the machinery (API, broker, worker, five status writes, pub/sub, SSE) adds.

Each attempt is what a client does: POST /api/queries, then GET /api/queries/{id}/events until the
terminal event. Timed from just before the POST is written to the arrival of the terminal event.
Measured one at a time (with the median of each phase, from the event rows), and open-loop at 50
attempts/s (a new attempt every 20 ms, whether or not earlier ones finished)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import asyncpg

from bench.client import TERMINAL, Connection, SseParser
from bench.config import Config
from bench.report import Report, Target, percentile
from bench.stack import INSTANT_SELECT_1, Stack

SCENARIO = "2 end-to-end"
QUESTION = "How many orders are there?"
RATE = 50.0  # attempts per second in the open-loop run
WARMUP = 20


@dataclass
class Pool:
    """Idle keep-alive connections to the API, handed out one request or stream at a time."""

    host: str
    port: int
    idle: list[tuple[Connection, float]] = field(default_factory=list)
    # uvicorn closes a keep-alive connection after 5 s of silence; never reuse one near that.
    max_idle_s: float = 2.0

    async def get(self) -> Connection:
        while self.idle:
            conn, since = self.idle.pop()
            if time.monotonic() - since < self.max_idle_s:
                return conn
            await conn.close()
        return await Connection.open(self.host, self.port)

    def put(self, conn: Connection) -> None:
        self.idle.append((conn, time.monotonic()))

    async def close(self) -> None:
        for conn, _ in self.idle:
            await conn.close()
        self.idle.clear()


@dataclass(frozen=True)
class Outcome:
    ms: float  # from writing the POST to the arrival of the terminal event
    status: str  # the terminal status
    attempt_id: str
    posted: float  # time.time() just before the POST
    arrived: float  # time.time() when the terminal event arrived


async def attempt(pool: Pool, auth: dict[str, str], question: str = QUESTION) -> Outcome:
    post = await pool.get()
    posted = time.time()
    started = time.perf_counter()
    response = (await post.request("POST", "/api/queries", headers=auth, json={"question": question})).expect(
        202
    )
    pool.put(post)
    attempt_id = str(response.json()["id"])
    stream = await pool.get()
    status, body = await stream.stream("GET", f"/api/queries/{attempt_id}/events", headers=auth)
    if status != 200:
        raise RuntimeError(f"events answered {status}")
    parser = SseParser()
    elapsed, final, arrived = 0.0, "", 0.0
    async for piece in body:  # read to the end, so the connection can be reused
        for event in parser.feed(piece):
            if event.event == "status" and not final:
                current = event.json()["status"]
                if current in TERMINAL:
                    elapsed, final, arrived = (time.perf_counter() - started) * 1000, current, event.received
    pool.put(stream)
    if not final:
        raise RuntimeError(f"the stream of {attempt_id} ended without a terminal event")
    return Outcome(elapsed, final, attempt_id, posted, arrived)


async def sequential(pool: Pool, auth: dict[str, str], count: int) -> list[Outcome]:
    return [await attempt(pool, auth) for _ in range(count)]


async def open_loop(pool: Pool, auth: dict[str, str], rate: float, seconds: float) -> list[Outcome]:
    tasks = []
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(attempt(pool, auth)))
    return list(await asyncio.gather(*tasks))


# Where the time goes, from the event rows' timestamps (the API's and the worker's clocks are this
# machine's) and the client's: POST → row committed → claimed → each status → event received.
PHASES = (
    ("submit (POST → queued row)", "queued", None),
    ("queue wait (queued → generating)", "generating", "queued"),
    ("generating (LLM call)", "validating", "generating"),
    ("validating (guard)", "executing", "validating"),
    ("executing + storing", "succeeded", "executing"),
)


async def phases(app_url: str, outcomes: list[Outcome]) -> dict[str, float]:
    """Median milliseconds per phase over these (succeeded) attempts."""
    conn = await asyncpg.connect(app_url)
    try:
        rows = await conn.fetch(
            "SELECT attempt_id, status, at FROM attempt_events WHERE attempt_id = ANY($1::text[])",
            [o.attempt_id for o in outcomes],
        )
    finally:
        await conn.close()
    at: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        at[row["attempt_id"]].setdefault(row["status"], row["at"].timestamp())
    spans: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        events = at[o.attempt_id]
        if o.status != "succeeded" or any(s not in events for _, s, _ in PHASES):
            continue
        for name, end, start in PHASES:
            spans[name].append((events[end] - (events[start] if start else o.posted)) * 1000)
        spans["delivery (succeeded → event at client)"].append((o.arrived - events["succeeded"]) * 1000)
    return {name: statistics.median(values) for name, values in spans.items()}


async def run(stack: Stack, report: Report, cfg: Config) -> None:
    await stack.flush()
    stack.set_llm(INSTANT_SELECT_1)
    await stack.start_api()
    await stack.start_worker()
    pool = Pool("127.0.0.1", stack.api_port)
    one: list[list[Outcome]] = []
    rated: list[list[Outcome]] = []
    breakdown: list[dict[str, float]] = []
    try:
        await sequential(pool, stack.auth, WARMUP)  # schema snapshot, target pool, LLM connection
        for _ in range(cfg.repeats):
            one.append(await sequential(pool, stack.auth, cfg.e2e_sequential))
            breakdown.append(await phases(stack.app_url, one[-1]))
            rated.append(await open_loop(pool, stack.auth, RATE, cfg.e2e_rate_s))
    finally:
        await pool.close()
        stack.stop_worker()

    def ms(runs: list[list[Outcome]], q: float) -> list[float]:
        return [percentile([o.ms for o in run], q) for run in runs]

    def statuses(runs: list[list[Outcome]]) -> str:
        total = Counter(o.status for run in runs for o in run)
        return ", ".join(f"{n} {s}" for s, n in sorted(total.items()))

    report.add(
        SCENARIO,
        "one at a time p50",
        "ms",
        ms(one, 50),
        target=Target("<=", 10),
        note=f"{cfg.e2e_sequential} attempts per run; {statuses(one)}",
    )
    report.add(SCENARIO, "one at a time p99", "ms", ms(one, 99), target=Target("<=", 40))
    for name in breakdown[0]:
        report.add(SCENARIO, f"  phase: {name}", "ms", [b.get(name, 0.0) for b in breakdown])
    report.add(
        SCENARIO,
        f"at {RATE:g} attempts/s p50",
        "ms",
        ms(rated, 50),
        note=f"open loop, {cfg.e2e_rate_s:g} s per run; {statuses(rated)}",
    )
    report.add(SCENARIO, f"at {RATE:g} attempts/s p99", "ms", ms(rated, 99))
