"""Operations after real attempts: the API's /metrics (HTTP by route template, attempts counted
from the app database, queue depth, open SSE streams), the worker's metrics port (stage timings,
LLM tokens), the embedded API exposing its worker's metrics, and the structured logs of the same
attempts (request and attempt ids from API to worker, no secrets)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest import create_pg_database, drop_pg_database, pg_url
from prometheus_client.parser import text_string_to_metric_families
from support.stack import Stack, base_env, cli, free_port, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("metrics")]

API_KEY = "sk-test-9f8e7d6c5b4a-never-logged"
PASSWORD = "alice-password-never-logged"
COUNT = "SELECT count(*) AS n FROM products"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture(scope="module")
def ops_stack(request, tmp_path_factory, redis_url, llm) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("metrics")
    pg_name = asyncio.run(create_pg_database())
    stack = Stack(
        env=base_env(
            SQLAGENT_DATABASE_URL=pg_url(pg_name),
            SQLAGENT_BROKER_URL=redis_url,
            SQLAGENT_LLM_BASE_URL=llm.base_url,
            SQLAGENT_LLM_API_KEY=API_KEY,
            SQLAGENT_LOG_FORMAT="json",
            SQLAGENT_WORKER_METRICS_PORT=str(free_port()),
        ),
        workdir=tmp,
    )
    try:
        assert cli("migrate", env=stack.env).returncode == 0
        stack.create_user("alice", PASSWORD)
        stack.start_api()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()
        if request.session.testsfailed:
            print(stack.logs())
        asyncio.run(drop_pg_database(pg_name))


@dataclass
class Run:
    """Four real attempts (two succeed, one is unanswerable, one is rejected) and the API's and
    the worker's metrics just before them, so the tests assert exact differences."""

    ids: dict[str, str]
    api_before: Samples
    worker_before: Samples


def _worker_metrics_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.env['SQLAGENT_WORKER_METRICS_PORT']}/metrics"


def _delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)


@pytest.fixture(scope="module")
def run(ops_stack: Stack, llm) -> Run:  # type: ignore[no-untyped-def]
    llm.add("How many products? (metrics ok)", {"sql": COUNT, "explanation": "count"})
    llm.add("How many products again? (metrics ok 2)", {"sql": COUNT, "explanation": "count"})
    llm.add("Weather in Paris? (metrics unanswerable)", {"sql": None, "explanation": "no weather data"})
    llm.add("Drop everything (metrics rejected)", {"sql": "DROP TABLE products", "explanation": "as asked"})
    deadline = time.monotonic() + 30
    while True:  # the worker serves its metrics from start-up, before any task
        try:
            worker_before = scrape(_worker_metrics_url(ops_stack))
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, ops_stack.logs()
            time.sleep(0.1)
    api_before = scrape(f"{ops_stack.base_url}/metrics")
    ids = {}
    with ops_stack.client("alice", PASSWORD) as client:
        for kind, question in (
            ("ok1", "How many products? (metrics ok)"),
            ("ok2", "How many products again? (metrics ok 2)"),
            ("unanswerable", "Weather in Paris? (metrics unanswerable)"),
            ("rejected", "Drop everything (metrics rejected)"),
        ):
            resp = client.post(
                "/api/queries", json={"question": question}, headers={"X-Request-ID": f"req-{kind}"}
            )
            assert resp.status_code == 202 and resp.headers["x-request-id"] == f"req-{kind}"
            ids[kind] = resp.json()["id"]
        for attempt_id in ids.values():
            wait_terminal(client, attempt_id)
            assert client.get(f"/api/queries/{attempt_id}").status_code == 200
    return Run(ids, api_before, worker_before)


def test_api_metrics_count_attempts_from_the_database_and_http_by_route(ops_stack: Stack, run: Run) -> None:
    samples = scrape(f"{ops_stack.base_url}/metrics")
    attempts = {
        (dict(labels)["status"], dict(labels)["error_code"]): v
        - (value(run.api_before, name, **dict(labels)) or 0)
        for (name, labels), v in samples.items()
        if name == "sqlagent_attempts_total"
    }
    assert {k: v for k, v in attempts.items() if v} == {
        ("succeeded", ""): 2,
        ("failed", "QUESTION_UNANSWERABLE"): 1,
        ("rejected", "SQL_REJECTED"): 1,
    }
    assert value(samples, "sqlagent_queue_depth") == 0
    assert value(samples, "sqlagent_broker_queue_messages") is not None

    http = "sqlagent_http_requests_total"
    assert _delta(samples, run.api_before, http, method="POST", route="/api/queries", status="202") == 4
    assert (
        _delta(samples, run.api_before, http, method="GET", route="/api/queries/{attempt_id}", status="200")
        >= 4
    )
    duration = "sqlagent_http_request_duration_seconds_count"
    assert _delta(samples, run.api_before, duration, method="POST", route="/api/queries") == 4
    # Route templates, never raw paths: no attempt id appears in any label.
    text = httpx.get(f"{ops_stack.base_url}/metrics", timeout=10).text
    assert not any(attempt_id in text for attempt_id in run.ids.values())
    # A 404 of an unknown path is counted under one label value, not under its path.
    httpx.get(f"{ops_stack.base_url}/no/such/route/{run.ids['ok1']}", timeout=10)
    after = scrape(f"{ops_stack.base_url}/metrics")
    assert _delta(after, samples, http, method="GET", route="unmatched", status="404") == 1


def test_worker_metrics_port_has_stage_timings_and_tokens(ops_stack: Stack, run: Run) -> None:
    samples = scrape(_worker_metrics_url(ops_stack))
    count = {
        stage: _delta(samples, run.worker_before, "sqlagent_stage_seconds_count", stage=stage)
        for stage in ("queue", "llm", "guard", "execute")
    }
    # 4 claims; LLM rounds 1 + 1 + 1 + 3 (the rejected one used every round); guard checks
    # 2 + 3; executions only for the two that succeeded.
    assert count == {"queue": 4, "llm": 6, "guard": 5, "execute": 2}
    assert _delta(samples, run.worker_before, "sqlagent_llm_tokens_total", kind="prompt") > 0
    assert _delta(samples, run.worker_before, "sqlagent_llm_tokens_total", kind="completion") > 0
    assert _delta(samples, run.worker_before, "sqlagent_stage_seconds_sum", stage="llm") > 0


def test_open_sse_streams_gauge(ops_stack: Stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "How many products, slowly? (metrics sse)"
    llm.add(question, {"delay_s": 30, "then": {"sql": COUNT, "explanation": "count"}})
    with ops_stack.client("alice", PASSWORD) as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        with client.stream("GET", f"/api/queries/{attempt_id}/events") as resp:
            lines = resp.iter_lines()  # kept: dropping the iterator would close the connection
            assert any(line.startswith("data:") for line in lines)
            assert value(scrape(f"{ops_stack.base_url}/metrics"), "sqlagent_sse_streams_open") == 1
        deadline = time.monotonic() + 10
        while value(scrape(f"{ops_stack.base_url}/metrics"), "sqlagent_sse_streams_open") != 0:
            assert time.monotonic() < deadline, "the closed stream is still counted"
            time.sleep(0.1)
        assert client.post(f"/api/queries/{attempt_id}/cancel", json={}).status_code == 202
        assert wait_terminal(client, attempt_id)["status"] == "cancelled"


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_logs_carry_request_and_attempt_ids_and_no_secrets(ops_stack: Stack, run: Run) -> None:
    api = next(p for p in ops_stack.processes if p.name == "api")
    worker = next(p for p in ops_stack.processes if p.name == "worker")
    api_lines, worker_lines = _json_lines(api.output()), _json_lines(worker.output())
    assert api_lines and worker_lines
    for kind, attempt_id in run.ids.items():
        submit = [
            e
            for e in api_lines
            if e.get("logger") == "sqlagent.access" and e.get("request_id") == f"req-{kind}"
        ]
        assert submit and submit[0]["route"] == "/api/queries" and submit[0]["status"] == 202
        for_attempt = [e for e in worker_lines if e.get("attempt_id") == attempt_id]
        # At least the attempt's end; every line of the attempt carries the submitting request's id.
        assert any(str(e["msg"]).endswith(("succeeded", "failed", "rejected")) for e in for_attempt)
        assert {e.get("request_id") for e in for_attempt} == {f"req-{kind}"}
    token = ops_stack.token("alice", PASSWORD)
    with httpx.Client(base_url=ops_stack.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/auth/me").status_code == 200
        assert client.get("/api/queries?page=999").status_code == 200
    time.sleep(0.5)
    everything = api.output() + worker.output()
    for secret in (API_KEY, PASSWORD, token):
        assert secret not in everything


def test_embedded_api_metrics_include_its_worker(tmp_path, llm) -> None:  # type: ignore[no-untyped-def]
    stack = Stack(
        env=base_env(
            SQLAGENT_DATABASE_URL=f"sqlite:///{tmp_path}/app.db", SQLAGENT_LLM_BASE_URL=llm.base_url
        ),
        workdir=tmp_path,
    )
    question = "How many products? (metrics embedded)"
    llm.add(question, {"sql": COUNT, "explanation": "count"})
    assert cli("migrate", env=stack.env).returncode == 0
    stack.create_user("alice", PASSWORD)
    try:
        stack.start_api()
        with stack.client("alice", PASSWORD) as client:
            attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
            assert wait_terminal(client, attempt_id)["status"] == "succeeded"
        samples = scrape(f"{stack.base_url}/metrics")
    finally:
        stack.stop()
    assert value(samples, "sqlagent_stage_seconds_count", stage="llm") == 1
    assert value(samples, "sqlagent_stage_seconds_count", stage="execute") == 1
    assert value(samples, "sqlagent_attempts_total", status="succeeded", error_code="") == 1
    assert value(samples, "sqlagent_broker_queue_messages") is None  # no broker in embedded mode
