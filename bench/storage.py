"""Scenario 5b: a 10,000-row result — produced, stored, and served.

Through the real stack: an attempt whose SQL returns the target's 10,000 rows (`SELECT * FROM
orders`, six columns of common types), timed submit → terminal event; then every row served as
JSON pages (10 of 1,000) and as CSV. In-process: the app-database write alone (`results.store` in
one transaction), on the same rows, so the cost of storing is visible apart from executing."""

from __future__ import annotations

import statistics
import time
from typing import Any

import asyncpg
import msgspec

from bench.config import Config
from bench.e2e import Pool, attempt
from bench.report import Report
from bench.stack import INSTANT_SELECT_1, TARGET_ROWS, Stack
from shared.attempts import repository as attempts
from shared.db.database import open_database
from shared.results import repository as results

SCENARIO = "5 results"
QUESTION = "List every order with all its columns"
SQL = "SELECT * FROM orders ORDER BY id"
PAGE = 1000


async def _get(pool: Pool, path: str, auth: dict[str, str]) -> tuple[float, bytes]:
    conn = await pool.get()
    started = time.perf_counter()
    response = (await conn.request("GET", path, headers=auth)).expect(200)
    elapsed = (time.perf_counter() - started) * 1000
    pool.put(conn)
    return elapsed, response.body


async def _one(stack: Stack, pool: Pool) -> dict[str, Any]:
    outcome = await attempt(pool, stack.auth, QUESTION)
    e2e_ms, attempt_id = outcome.ms, outcome.attempt_id
    if outcome.status != "succeeded":
        raise RuntimeError(f"the 10,000-row attempt ended {outcome.status}")
    read = msgspec.json.decode((await _get(pool, f"/api/queries/{attempt_id}", stack.auth))[1])
    if read["row_count"] != TARGET_ROWS or read["truncated"]:
        raise RuntimeError(
            f"expected {TARGET_ROWS} rows untruncated, got {read['row_count']} ({read['truncated']})"
        )
    pages_ms, pages_bytes, rows = 0.0, 0, []
    for page in range(1, TARGET_ROWS // PAGE + 1):
        ms, body = await _get(
            pool, f"/api/queries/{attempt_id}/results?page={page}&page_size={PAGE}", stack.auth
        )
        pages_ms += ms
        pages_bytes += len(body)
        rows.extend(msgspec.json.decode(body)["rows"])
    csv_ms, csv_body = await _get(pool, f"/api/queries/{attempt_id}/results.csv", stack.auth)
    db = await asyncpg.connect(stack.app_url)
    try:
        stored = await db.fetchrow(
            """SELECT r.byte_size, r.columns, (SELECT sum(octet_length(c.rows)) FROM result_chunks c
                                             WHERE c.attempt_id = r.attempt_id) AS chunk_bytes
               FROM attempt_results r WHERE r.attempt_id = $1""",
            attempt_id,
        )
    finally:
        await db.close()
    assert stored is not None
    return {
        "e2e_ms": e2e_ms,
        "exec_ms": read["timings"]["exec_ms"],
        "pages_ms": pages_ms,
        "pages_bytes": pages_bytes,
        "csv_ms": csv_ms,
        "csv_bytes": len(csv_body),
        "stored_bytes": int(stored["chunk_bytes"]),
        "columns": stored["columns"],
        "rows": rows,
    }


async def _store_ms(
    stack: Stack, columns_json: str, rows: list[list[object]], byte_size: int, n: int
) -> float:
    """Median time of `results.store` for these rows, each in its own transaction."""
    columns = msgspec.json.decode(columns_json, type=list[results.StoredColumn])
    db = await open_database(stack.app_url)
    times = []
    try:
        for _ in range(n):
            owner = await attempts.create(db, user_id=stack.user_id, question=QUESTION, data_source="default")
            started = time.perf_counter()
            async with db.transaction() as tx:
                await results.store(
                    tx, owner.id, columns=columns, rows=rows, truncated=False, byte_size=byte_size
                )
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await db.close()
    return statistics.median(times)


async def run(stack: Stack, report: Report, cfg: Config) -> None:
    await stack.flush()
    assert stack.llm is not None
    stack.llm.update({"questions": {QUESTION: {"sql": SQL, "explanation": "bench: every row"}}})
    await stack.start_api()
    await stack.start_worker()
    pool = Pool("127.0.0.1", stack.api_port)
    runs: list[dict[str, float]] = []
    last: dict[str, Any] = {}
    try:
        await attempt(pool, stack.auth)  # warm-up: snapshot and target pool
        await _one(stack, pool)
        for _ in range(cfg.repeats):
            each = [await _one(stack, pool) for _ in range(cfg.result_attempts)]
            last = each[-1]
            summary = {
                k: statistics.median(e[k] for e in each)
                for k in (
                    "e2e_ms",
                    "exec_ms",
                    "pages_ms",
                    "pages_bytes",
                    "csv_ms",
                    "csv_bytes",
                    "stored_bytes",
                )
            }
            summary["store_ms"] = await _store_ms(
                stack, last["columns"], last["rows"], last["stored_bytes"], cfg.result_attempts
            )
            runs.append(summary)
    finally:
        await pool.close()
        stack.stop_worker()
        stack.set_llm(INSTANT_SELECT_1)

    def col(key: str, scale: float = 1.0) -> list[float]:
        return [r[key] * scale for r in runs]

    kib = 1 / 1024
    report.add(
        SCENARIO,
        "10,000-row attempt, submit → terminal event",
        "ms",
        col("e2e_ms"),
        note=f"{SQL!r} on PostgreSQL, 6 columns; median of {cfg.result_attempts} attempts per run",
    )
    report.add(SCENARIO, "… of which executing (timings.exec_ms)", "ms", col("exec_ms"))
    report.add(SCENARIO, "store 10,000 rows (results.store, in-process)", "ms", col("store_ms"))
    report.add(SCENARIO, "stored size (JSON chunks)", "KiB", col("stored_bytes", kib))
    report.add(
        SCENARIO,
        f"serve as JSON, {TARGET_ROWS // PAGE} pages of {PAGE:,}",
        "ms",
        col("pages_ms"),
        note=f"{statistics.median(col('pages_bytes', kib)):,.0f} KiB in all",
    )
    report.add(
        SCENARIO,
        "serve results.csv",
        "ms",
        col("csv_ms"),
        note=f"{statistics.median(col('csv_bytes', kib)):,.0f} KiB",
    )
