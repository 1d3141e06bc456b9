"""Scenario 1: submit throughput and latency, next to the same server's /health and the naive
reference, all measured with wrk at 32 connections in the same run.

Workers are paused (no worker process), so the queue grows in Redis; rate limits are off. After
each submit run the bench checks that every accepted attempt is in the app database and its task
message in the queue, so a fast path that loses work cannot look good."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import asyncpg
import httpx
import redis.asyncio as aioredis

from bench import dbceiling, wrk
from bench.config import Config
from bench.profile import spy
from bench.report import Report, Target
from bench.stack import Process, Stack, cpu_delta, cpu_seconds, free_port
from shared.tasks import QUEUE

SCENARIO = "1 submit"
QUESTION = "How many orders were shipped in each month of 2024?"
BODY = json.dumps({"question": QUESTION})


async def _start_naive(stack: Stack) -> tuple[Process, str]:

    port = free_port()
    naive = stack.spawn(
        "naive",
        [
            sys.executable,
            "-m",
            "bench.naive",
            "--port",
            str(port),
            "--database-url",
            stack.app_url,
            "--broker-url",
            stack.redis_url,
            "--user-id",
            str(stack.user_id),
        ],
        stack.env,
    )
    url = f"http://127.0.0.1:{port}/naive"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if not naive.alive():
                raise RuntimeError(f"the naive server exited:\n{naive.tail()}")
            try:
                if (await client.post(url, content=BODY)).status_code == 202:
                    return naive, url
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the naive server did not start:\n{naive.tail()}")


async def _accounted(stack: Stack, wait_s: float = 10) -> tuple[int, int]:
    """(rows in attempts, task messages in the queue), waiting a little for late publishes."""
    client = aioredis.Redis.from_url(stack.redis_url)
    conn = await asyncpg.connect(stack.app_url)
    try:
        rows = int(await conn.fetchval("SELECT count(*) FROM attempts"))
        queued = int(await client.llen(QUEUE))
        deadline = time.monotonic() + wait_s
        while queued < rows and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            queued = int(await client.llen(QUEUE))
        return rows, queued
    finally:
        await conn.close()
        await client.aclose()


async def run(stack: Stack, report: Report, cfg: Config) -> None:
    stack.stop_worker()
    await stack.flush()
    api = await stack.start_api()
    naive, naive_url = await _start_naive(stack)
    submit_url = f"{stack.base_url}/api/queries"
    health_url = f"{stack.base_url}/health"
    post = {"method": "POST", "body": BODY, "headers": {"Content-Type": "application/json", **stack.auth}}

    def load(url: str, seconds: float, **kwargs: object) -> wrk.WrkResult:
        return wrk.run(url, duration_s=seconds, connections=cfg.connections, **kwargs)  # type: ignore[arg-type]

    async def measured(pid: int, url: str, **kwargs: object) -> tuple[wrk.WrkResult, float, float]:
        """The wrk result, and the server process's and the app database's backends' CPU
        milliseconds per request."""
        before, db_before = cpu_seconds(pid), await stack.backend_cpu()
        result = await asyncio.to_thread(load, url, cfg.wrk_s, **kwargs)
        requests = max(result.requests, 1)
        db_after = await stack.backend_cpu()
        # wrk stops with requests in flight; let the server finish them, so that no late INSERT
        # lands after the next flush (the naive handler's would be counted as undispatched rows).
        await asyncio.sleep(1)
        db_ms = cpu_delta(db_before, db_after) * 1000 / requests
        return result, (cpu_seconds(pid) - before) * 1000 / requests, db_ms

    try:
        for url, kwargs in ((health_url, {}), (submit_url, post), (naive_url, post)):  # warm-up
            await asyncio.to_thread(load, url, 1 if cfg.quick else 2, **kwargs)
        await asyncio.sleep(1)
        await stack.flush()
        health, submit, naive_runs, problems = [], [], [], []
        cpu: dict[str, list[float]] = {k: [] for k in ("submit", "submit_db", "health", "naive", "naive_db")}
        for repeat in range(cfg.repeats):
            result, ms, _ = await measured(api.pid, health_url)
            health.append(result)
            cpu["health"].append(ms)
            profiling = cfg.profile and repeat == cfg.repeats - 1
            with spy(api.pid, cfg.logdir / "profile-submit-api.collapsed", enabled=profiling):
                result, ms, db_ms = await measured(api.pid, submit_url, **post)
            submit.append(result)
            cpu["submit"].append(ms)
            cpu["submit_db"].append(db_ms)
            rows, queued = await _accounted(stack)
            if rows < result.requests or queued < rows:
                problems.append(
                    f"run {repeat + 1}: {result.requests} accepted, {rows} rows, {queued} messages"
                )
            await stack.flush()
            result, ms, db_ms = await measured(naive.pid, naive_url, **post)
            naive_runs.append(result)
            cpu["naive"].append(ms)
            cpu["naive_db"].append(db_ms)
            await stack.flush()
    finally:
        naive.stop()
        await stack.flush()

    for name, runs in (("submit", submit), ("/health", health), ("naive", naive_runs)):
        errors = sum(r.errors for r in runs)
        if errors:
            problems.append(f"{name}: {errors} errors or non-2xx answers")
    accounting = (
        "every accepted attempt had its row and queue message" if not problems else "; ".join(problems)
    )
    report.add(
        SCENARIO,
        "POST /api/queries throughput",
        "req/s",
        [r.rps for r in submit],
        note=f"wrk -c{cfg.connections}, {cfg.wrk_s:g} s per run; {accounting}",
    )
    report.add(SCENARIO, "POST /api/queries p50", "ms", [r.p50_ms for r in submit])
    report.add(SCENARIO, "  API CPU per submit", "ms", cpu["submit"])
    report.add(
        SCENARIO,
        "  PostgreSQL CPU per submit",
        "ms",
        cpu["submit_db"],
        note="CPU of the app database's backends (all clients of it) over the run, per request",
    )
    report.add(SCENARIO, "POST /api/queries p99", "ms", [r.p99_ms for r in submit], target=Target("<=", 25))
    report.add(SCENARIO, "GET /health throughput (same server)", "req/s", [r.rps for r in health])
    report.add(SCENARIO, "GET /health p99", "ms", [r.p99_ms for r in health])
    report.add(SCENARIO, "  API CPU per /health", "ms", cpu["health"])
    report.add(
        SCENARIO,
        "naive handler throughput",
        "req/s",
        [r.rps for r in naive_runs],
        note="INSERT + blocking Celery send_task in an async Litestar handler (bench/naive.py)",
    )
    report.add(SCENARIO, "naive handler p99", "ms", [r.p99_ms for r in naive_runs])
    report.add(SCENARIO, "  naive server CPU per request", "ms", cpu["naive"])
    report.add(SCENARIO, "  PostgreSQL CPU per naive request", "ms", cpu["naive_db"])
    report.add(
        SCENARIO,
        "submit ÷ naive",
        "x",
        [s.rps / n.rps for s, n in zip(submit, naive_runs, strict=True)],
        target=Target(">=", 2.5),
    )
    report.add(
        SCENARIO,
        "submit ÷ /health",
        "x",
        [s.rps / h.rps for s, h in zip(submit, health, strict=True)],
        target=Target(">=", 0.3),
    )
    try:
        await _ceiling(stack, report, cfg)
    except Exception as exc:  # the HTTP figures above stand without it
        report.error(SCENARIO, f"app-DB ceiling: {type(exc).__name__}: {exc}")


async def _ceiling(stack: Stack, report: Report, cfg: Config) -> None:
    """The submit's database work alone, in its current and its earlier shape (bench/dbceiling.py)."""
    runs: dict[bool, list[dbceiling.Ceiling]] = {True: [], False: []}
    for _ in range(cfg.repeats):
        for one_statement in (True, False):
            runs[one_statement].append(
                await dbceiling.measure(stack, cfg.wrk_s / 2, one_statement=one_statement)
            )
            await stack.flush()
    report.add(
        SCENARIO,
        "app-DB ceiling: one-statement insert, no pool reset",
        "inserts/s",
        [c.per_s for c in runs[True]],
        note=f"bench/dbceiling.py: attempt + event, {dbceiling.CONCURRENCY} concurrent, "
        f"{dbceiling.POOL_SIZE}-connection asyncpg pool, no HTTP",
    )
    report.add(SCENARIO, "  PostgreSQL CPU per insert", "ms", [c.db_ms for c in runs[True]])
    report.add(SCENARIO, "  client CPU per insert", "ms", [c.client_ms for c in runs[True]])
    report.add(
        SCENARIO,
        "  same as BEGIN/INSERT/INSERT/COMMIT, default pool",
        "inserts/s",
        [c.per_s for c in runs[False]],
        note="the submit's shape before 583465f9",
    )
    report.add(SCENARIO, "  PostgreSQL CPU per insert, old shape", "ms", [c.db_ms for c in runs[False]])
    report.add(SCENARIO, "  client CPU per insert, old shape", "ms", [c.client_ms for c in runs[False]])
