"""All 210 Defog questions through the real stack, answered with their own gold SQL.

API and Celery worker processes on Redis, a PostgreSQL app database, the 11 Defog databases as
data sources (a generated targets file), and an LLM test server that answers each question with
its gold query. Every attempt should succeed, and its stored rows should equal running the same
SQL directly on PostgreSQL. A failure here is a guard false positive (a read-only query refused)
or a value-conversion bug, so the assertion lists each one with its detail."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from support.llm_server import LlmServer
from support.pg import PG_ADMIN_URL, create_pg_database, drop_pg_database, pg_url
from support.stack import Stack, base_env, cli

from shared.db.migrate import migrate
from shared.evaldata import QUESTIONS_DIR
from shared.evaldata.load import drop_defog_databases, load_defog_databases, targets_toml
from shared.evaldata.questions import EvalQuestion, read_questions
from shared.results.values import to_json_value

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("defog_replay")]

QUESTIONS = read_questions(QUESTIONS_DIR / "questions_gen_postgres.csv")
TERMINAL = {"succeeded", "failed", "rejected", "timed_out", "cancelled"}
ORDER_BY = re.compile(r"\border\s+by\b", re.I)


@pytest.fixture(scope="module")
async def defog_urls() -> AsyncIterator[dict[str, str]]:
    prefix = f"replay_{uuid.uuid4().hex[:8]}"
    urls = await load_defog_databases(PG_ADMIN_URL, prefix=prefix)
    yield urls
    await drop_defog_databases(PG_ADMIN_URL, prefix=prefix)


@pytest.fixture(scope="module")
async def replay_app_url() -> AsyncIterator[str]:
    name = await create_pg_database("sqlagent_replay")
    await migrate(pg_url(name))
    yield pg_url(name)
    await drop_pg_database(name)


@pytest.fixture(scope="module")
def replay_stack(
    request, tmp_path_factory, defog_urls, replay_app_url, redis_url
) -> Iterator[tuple[Stack, LlmServer]]:  # type: ignore[no-untyped-def]
    tmp: Path = tmp_path_factory.mktemp("defog-replay")
    targets = tmp / "defog.toml"
    targets.write_text(targets_toml(defog_urls))
    with LlmServer() as llm:
        llm.add_gold({q.question: q.gold[0] for q in QUESTIONS})
        env = base_env(
            SQLAGENT_DATABASE_URL=replay_app_url,
            SQLAGENT_BROKER_URL=redis_url,
            SQLAGENT_TARGETS_FILE=str(targets),
            SQLAGENT_LLM_BASE_URL=llm.base_url,
            SQLAGENT_LLM_MODEL="test-model",
        )
        assert cli("migrate", env=env).returncode == 0
        stack = Stack(env=env, workdir=tmp)
        stack.create_user("alice", "alice-password")
        try:
            stack.start_api()
            stack.start_worker(concurrency=8)
            yield stack, llm
        finally:
            stack.stop()
            if request.session.testsfailed:
                print(stack.logs())


# --- the direct side: asyncpg without sqlagent's codecs, then to_json_value ------------------


async def run_directly(
    urls: dict[str, str], question: EvalQuestion, sql: str
) -> tuple[list[str], list[list[Any]]]:
    conn = await asyncpg.connect(urls[question.data_source])
    try:
        stmt = await conn.prepare(sql)
        columns = [a.name for a in stmt.get_attributes()]
        rows = [[to_json_value(v) for v in record] for record in await stmt.fetch()]
    finally:
        await conn.close()
    return columns, rows


def same_value(a: Any, b: Any) -> bool:
    """JSON equality, except floats: float4 arrives from the pipeline in its shortest form (4.1)
    and from plain asyncpg widened to float8 (4.099999904632568)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def sort_key(row: list[Any]) -> bytes:
    return msgspec.json.encode([float(f"{v:.6g}") if isinstance(v, float) else v for v in row])


def rows_differ(sql: str, got: list[list[Any]], expected: list[list[Any]]) -> str | None:
    if not ORDER_BY.search(sql):
        got, expected = sorted(got, key=sort_key), sorted(expected, key=sort_key)
    if len(got) != len(expected):
        return f"{len(got)} rows via the API, {len(expected)} directly"
    for index, (g, e) in enumerate(zip(got, expected, strict=True)):
        if not same_value(g, e):
            return f"row {index}: API {g!r} != direct {e!r}"
    return None


# --- the test --------------------------------------------------------------------------------


def wait_all_terminal(client: httpx.Client, ids: set[str], timeout: float = 240) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        page, seen = 1, {}
        while True:
            body = client.get("/api/queries", params={"page": page, "page_size": 100}).json()
            seen.update({item["id"]: item for item in body["items"] if item["id"] in ids})
            if page >= body["pagination"]["total_pages"]:
                break
            page += 1
        if all(seen.get(i, {}).get("status") in TERMINAL for i in ids):
            return seen
        time.sleep(0.25)
    pending = sorted(i for i in ids if seen.get(i, {}).get("status") not in TERMINAL)
    raise AssertionError(f"{len(pending)} attempts not terminal after {timeout}s: {pending[:5]}")


async def test_every_defog_question_replays_its_gold_sql(replay_stack, defog_urls) -> None:  # type: ignore[no-untyped-def]
    stack, llm = replay_stack
    assert len(QUESTIONS) == 210
    by_id: dict[str, EvalQuestion] = {}
    with stack.token_client("alice", "alice-password") as client:
        for question in QUESTIONS:
            resp = client.post(
                "/api/queries", json={"question": question.question, "data_source": question.data_source}
            )
            assert resp.status_code == 202, resp.text
            by_id[resp.json()["id"]] = question
        finals = wait_all_terminal(client, set(by_id))

        failures: list[str] = []
        for attempt_id, question in by_id.items():
            final, sql = finals[attempt_id], question.gold[0]
            where = f"[{question.data_source}] {question.question!r}"
            if final["status"] != "succeeded":
                outcome = f"{final['status']} {final['error_code']}: {final['error_detail']}"
                failures.append(f"{where}: {outcome}\n    SQL: {sql}")
                continue
            page = client.get(f"/api/queries/{attempt_id}/results", params={"page_size": 1000}).json()
            assert page["pagination"]["total_count"] <= 1000
            columns, expected = await run_directly(defog_urls, question, sql)
            got_columns = [c["name"] for c in page["columns"]]
            if got_columns != columns:
                failures.append(f"{where}: columns {got_columns} via the API, {columns} directly")
                continue
            if final["row_count"] != len(expected) or final["truncated"]:
                failures.append(
                    f"{where}: row_count {final['row_count']} (truncated {final['truncated']}), "
                    f"{len(expected)} directly"
                )
            difference = rows_differ(sql, page["rows"], expected)
            if difference:
                failures.append(f"{where}: {difference}\n    SQL: {sql}")

    # Every question reached the model verbatim, as the first user message, exactly once.
    assert {r["question"] for r in llm.requests()} >= {q.question for q in QUESTIONS}
    passed = len(QUESTIONS) - len(failures)
    assert passed >= 0.99 * len(QUESTIONS), (
        f"{len(failures)} of {len(QUESTIONS)} gold queries did not replay:\n" + "\n".join(failures)
    )
