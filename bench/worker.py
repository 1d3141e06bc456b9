"""Scenario 3: worker throughput. One `sqlagent worker` process drains a full queue.

- Instant LLM: attempts/s from the first claim to the last finish (worker start-up excluded), and
  the worker's CPU time per attempt.
- LLM taking 1 s: for several pool sizes, how many attempts are in flight at once while a backlog
  remains (sampled from the app database every 100 ms). LLM waits are I/O, so in-flight attempts
  should follow the pool size, not the two cores."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import asyncpg

from bench.client import Connection
from bench.config import Config
from bench.profile import spy
from bench.report import Report, Target
from bench.stack import INSTANT_SELECT_1, Stack, cpu_seconds

SCENARIO = "3 worker"
QUESTION = "Which customers placed the most orders?"
RUNNING = ("generating", "validating", "executing")
TERMINAL = ("succeeded", "failed", "rejected", "timed_out", "cancelled")
SLOW_LLM = {"delay_s": 1.0, "then": INSTANT_SELECT_1}


async def submit_many(
    stack: Stack, count: int, *, connections: int = 32, question: str = QUESTION
) -> list[str]:
    """Submit `count` attempts over `connections` keep-alive connections; their ids."""
    ids: list[str] = []
    remaining = iter(range(count))

    async def client() -> None:
        conn = await Connection.open("127.0.0.1", stack.api_port)
        try:
            for _ in remaining:
                response = await conn.request(
                    "POST", "/api/queries", headers=stack.auth, json={"question": question}
                )
                ids.append(str(response.expect(202).json()["id"]))
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return ids


async def _counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
                  count(*) FILTER (WHERE status = ANY($1::text[])) AS running,
                  count(*) FILTER (WHERE status = ANY($2::text[])) AS done
           FROM attempts""",
        list(RUNNING),
        list(TERMINAL),
    )
    assert row is not None
    return int(row["queued"]), int(row["running"]), int(row["done"])


async def _drain(stack: Stack, total: int, timeout_s: float, sample_s: float = 0.1) -> list[tuple[int, int]]:
    """Wait until `total` attempts are terminal; (queued, running) samples taken on the way."""
    conn = await asyncpg.connect(stack.app_url)
    samples = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            queued, running, done = await _counts(conn)
            samples.append((queued, running))
            if done >= total:
                return samples
            if stack.worker is not None and not stack.worker.alive():
                raise RuntimeError(f"the worker died:\n{stack.worker.tail()}")
            await asyncio.sleep(sample_s)
        raise RuntimeError(f"{total - done} of {total} attempts not terminal after {timeout_s:g} s")
    finally:
        await conn.close()


async def _window(stack: Stack) -> dict[str, Any]:
    conn = await asyncpg.connect(stack.app_url)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) AS total, count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                      EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) AS seconds
               FROM attempts"""
        )
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


async def _drain_rate(
    stack: Stack, cfg: Config, profile: bool, processes: int = 1
) -> tuple[float, float, str]:
    """(attempts/s, worker CPU ms per attempt, outcome) for one full queue and an instant LLM."""
    await stack.flush()
    count = cfg.drain_attempts
    await submit_many(stack, count)
    worker = await stack.start_worker(processes=processes)
    pids = [worker.pid, *(w.pid for w in stack.extra_workers)]
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    with spy(worker.pid, cfg.logdir / "profile-worker-drain.collapsed", enabled=profile):
        await _drain(stack, count, timeout_s=count / 20 + 60)
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    stack.stop_worker()
    window = await _window(stack)
    rate = window["total"] / float(window["seconds"])
    return rate, cpu * 1000 / count, f"{window['succeeded']}/{window['total']} succeeded"


async def _in_flight(stack: Stack, pool: int, rounds: int) -> tuple[float, float, float]:
    """(median attempts in flight while a backlog remains, the peak, attempts/s) with a 1 s LLM."""
    await stack.flush()
    count = pool * rounds
    await submit_many(stack, count)
    await stack.start_worker(concurrency=pool)
    samples = await _drain(stack, count, timeout_s=rounds * 4 + 60)
    stack.stop_worker()
    window = await _window(stack)
    # Steady state: the backlog is not empty yet, and the worker has started taking attempts.
    steady = [running for queued, running in samples if queued > 0 and running > 0] or [0]
    return statistics.median(steady), max(r for _, r in samples), window["total"] / float(window["seconds"])


async def run(stack: Stack, report: Report, cfg: Config) -> None:
    await stack.start_api()
    stack.set_llm(INSTANT_SELECT_1)
    rates, cpus, outcomes = [], [], []
    for repeat in range(cfg.repeats):
        rate, cpu_ms, outcome = await _drain_rate(stack, cfg, cfg.profile and repeat == cfg.repeats - 1)
        rates.append(rate)
        cpus.append(cpu_ms)
        outcomes.append(outcome)
    report.add(
        SCENARIO,
        "drain rate, instant LLM, 1 process",
        "attempts/s",
        rates,
        target=Target(">=", 300),
        note=f"{cfg.drain_attempts} queued, default pool; {', '.join(outcomes)}",
    )
    report.add(SCENARIO, "worker CPU per attempt", "ms", cpus)
    # The same queue on two worker processes, one per core: what a deployment on this machine
    # sustains (the API, PostgreSQL, Redis and the LLM test server share the same two cores).
    pairs = [await _drain_rate(stack, cfg, False, processes=2) for _ in range(cfg.repeats)]
    report.add(
        SCENARIO,
        "drain rate, instant LLM, 2 processes",
        "attempts/s",
        [p[0] for p in pairs],
        note=f"{cfg.drain_attempts} queued, two `sqlagent worker` processes; {', '.join(p[2] for p in pairs)}",
    )

    stack.set_llm(SLOW_LLM)
    try:
        largest = max(cfg.slow_llm_pools)
        for pool in cfg.slow_llm_pools:
            runs = [await _in_flight(stack, pool, cfg.slow_llm_rounds) for _ in range(cfg.repeats)]
            rate = statistics.median(r[2] for r in runs)
            report.add(
                SCENARIO,
                f"in flight, 1 s LLM, --concurrency {pool}",
                "attempts",
                [r[0] for r in runs],
                target=Target(">=", 50) if pool == largest else None,
                note=f"peak {max(r[1] for r in runs):g}; "
                f"{rate:.1f} attempts/s ({pool * cfg.slow_llm_rounds} queued)",
            )
    finally:
        stack.set_llm(INSTANT_SELECT_1)
