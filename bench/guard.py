"""Scenario 5a: the SQL guard's validation time per statement, in-process, through the same call
the worker's validating step makes (`shared.sqlguard.policy.check`), on the bench's PostgreSQL
target and on the bundled SQLite demo database."""

from __future__ import annotations

import contextlib
import time

from bench.config import Config
from bench.report import Report
from bench.stack import Stack
from shared.pipeline_errors import SqlRejected
from shared.settings import load_settings
from shared.sqlguard import policy
from shared.targets.config import DataSource
from shared.targets.introspect import SchemaSnapshot, introspect

SCENARIO = "5 guard"

PG_SIMPLE = (
    "SELECT customer, count(*) AS orders FROM orders WHERE shipped GROUP BY customer ORDER BY 2 DESC LIMIT 10"
)
PG_COMPLEX = """
WITH monthly AS (
    SELECT date_trunc('month', placed_at) AS month, customer, sum(amount) AS total, count(*) AS n
    FROM orders
    WHERE placed_at >= '2024-01-01' AND note IS NOT NULL
    GROUP BY 1, 2
), ranked AS (
    SELECT month, customer, total, n, rank() OVER (PARTITION BY month ORDER BY total DESC) AS r
    FROM monthly
)
SELECT r.month, r.customer, r.total, r.n,
       CASE WHEN r.total > 1000 THEN 'big' ELSE 'small' END AS size,
       (SELECT avg(o.amount) FROM orders o WHERE o.customer = r.customer) AS avg_amount,
       coalesce(upper(substr(r.customer, 1, 3)), '') AS code
FROM ranked r
JOIN orders first_order ON first_order.id = (SELECT min(o3.id) FROM orders o3 WHERE o3.customer = r.customer)
WHERE r.r <= 3 AND r.customer IN (SELECT customer FROM orders WHERE shipped)
ORDER BY r.month, r.r
LIMIT 100
"""
PG_REJECTED = "SELECT id, pg_sleep(10) FROM orders"
SQLITE_COMPLEX = """
WITH spend AS (
    SELECT c.id, c.country, sum(oi.quantity * oi.unit_price * (1 - oi.discount)) AS total
    FROM customers c
    JOIN orders o ON o.customer_id = c.id
    JOIN order_items oi ON oi.order_id = o.id
    WHERE o.status <> 'cancelled'
    GROUP BY c.id, c.country
)
SELECT country, count(*) AS customers, round(avg(total), 2) AS avg_spend,
       max(total) AS top_spend
FROM spend
GROUP BY country
HAVING count(*) > 1
ORDER BY avg_spend DESC
"""


async def _per_statement_us(source: DataSource, snapshot: SchemaSnapshot, sql: str, seconds: float) -> float:
    """Mean microseconds per check over `seconds` of back-to-back checks (at least 20)."""
    started = time.perf_counter()
    count = 0
    while count < 20 or time.perf_counter() - started < seconds:
        with contextlib.suppress(SqlRejected):
            await policy.check(source, snapshot, sql)
        count += 1
    return (time.perf_counter() - started) / count * 1e6


async def _verdict(source: DataSource, snapshot: SchemaSnapshot, sql: str) -> str:
    try:
        await policy.check(source, snapshot, sql)
    except SqlRejected as exc:
        return f"rejected ({exc.detail})"
    return "accepted"


async def run(stack: Stack, report: Report, cfg: Config) -> None:
    pg = load_settings({"SQLAGENT_TARGET_URL": stack.target_url}).data_source("default")
    lite = load_settings({}).data_source("default")
    assert pg is not None and lite is not None
    pg_snapshot, lite_snapshot = await introspect(pg), await introspect(lite)
    cases = [
        ("PostgreSQL, SELECT 1", pg, pg_snapshot, "SELECT 1", "accepted"),
        ("PostgreSQL, GROUP BY", pg, pg_snapshot, PG_SIMPLE, "accepted"),
        ("PostgreSQL, CTEs + window + subqueries", pg, pg_snapshot, PG_COMPLEX, "accepted"),
        ("PostgreSQL, rejected (pg_sleep)", pg, pg_snapshot, PG_REJECTED, "rejected"),
        ("SQLite, CTE + joins", lite, lite_snapshot, SQLITE_COMPLEX, "accepted"),
    ]
    for name, source, snapshot, sql, expected in cases:
        verdict = await _verdict(source, snapshot, sql)
        if not verdict.startswith(expected):
            report.error(SCENARIO, f"{name}: expected {expected}, got {verdict}")
            continue
        await _per_statement_us(source, snapshot, sql, 0)  # warm-up
        samples = [await _per_statement_us(source, snapshot, sql, cfg.guard_s) for _ in range(cfg.repeats)]
        report.add(
            SCENARIO,
            f"validate: {name}",
            "µs",
            samples,
            note=verdict if expected == "rejected" else "",
        )
    if cfg.profile:
        _profile(pg, pg_snapshot, cfg)


def _profile(source: DataSource, snapshot: SchemaSnapshot, cfg: Config) -> None:
    """pyinstrument over the complex PostgreSQL statement (the guard is synchronous there)."""
    from pyinstrument import Profiler

    from shared.sqlguard.postgres import check_postgres

    rules = policy.postgres_policy(source, snapshot)
    profiler = Profiler(interval=0.0002)
    with profiler:
        for _ in range(200):
            check_postgres(PG_COMPLEX, rules)
    (cfg.logdir / "profile-guard.txt").write_text(profiler.output_text(unicode=True, show_all=False))
