"""Nothing lost: every accepted attempt reaches a terminal status through worker crashes, a Redis
outage, an API crash and LLM outages — real processes, killed with signals."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from support.llm_server import LlmServer
from support.pg import create_pg_database, drop_pg_database, pg_url
from support.services import RedisServer
from support.stack import Stack, base_env, cli, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("faults")]

SLOW_SQL = "SELECT count(*) AS n FROM generate_series(1, 15000000) AS g"


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmServer]:
    with LlmServer({"default": {"sql": "SELECT 1 AS one", "explanation": "one"}}) as server:
        yield server


@pytest.fixture(scope="module")
def target_url() -> Iterator[str]:
    import asyncio

    name = asyncio.run(create_pg_database("sqlagent_target"))
    try:
        yield pg_url(name)
    finally:
        asyncio.run(drop_pg_database(name))


def make_stack(tmp, redis: RedisServer, llm: LlmServer, target_url: str, **env: str) -> Stack:  # type: ignore[no-untyped-def]
    stack = Stack(
        env=base_env(
            SQLAGENT_DATABASE_URL=f"sqlite:///{tmp}/app.db",
            SQLAGENT_BROKER_URL=redis.url,
            SQLAGENT_LLM_BASE_URL=llm.base_url,
            SQLAGENT_TARGET_URL=target_url,
            **env,
        ),
        workdir=tmp,
    )
    assert cli("migrate", env=stack.env).returncode == 0
    stack.create_user("alice", "alice-password")
    return stack


def submit(client: httpx.Client, question: str) -> str:
    resp = client.post("/api/queries", json={"question": question})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def wait_status(client: httpx.Client, ids: list[str], statuses: set[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(client.get(f"/api/queries/{i}").json()["status"] in statuses for i in ids):
            return
        time.sleep(0.05)
    raise AssertionError(f"not all of {ids} reached {statuses}")


def test_worker_killed_during_llm_and_during_statement(tmp_path, llm, target_url) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer(tmp_path).start()
    stack = make_stack(tmp_path, redis, llm, target_url)
    try:
        llm.add("slow llm (kill)", {"delay_s": 2, "then": {"sql": "SELECT 2 AS two", "explanation": "two"}})
        llm.add("slow statement (kill)", {"sql": SLOW_SQL, "explanation": "slow"})
        stack.start_api()
        worker = stack.start_worker(concurrency=8)
        with stack.client("alice", "alice-password") as client:
            in_llm = [submit(client, "slow llm (kill)") for _ in range(4)]
            in_db = [submit(client, "slow statement (kill)") for _ in range(2)]
            wait_status(client, in_llm, {"generating"})
            wait_status(client, in_db, {"executing"})
            worker.stop(signal.SIGKILL)
            stack.start_worker(concurrency=8)
            finals = [wait_terminal(client, i, timeout=60) for i in in_llm + in_db]
        assert [f["status"] for f in finals] == ["succeeded"] * 6, finals
        assert all(f["row_count"] == 1 for f in finals)
        # The reaper sent each lost attempt back through `queued` once.
        with (
            stack.client("alice", "alice-password") as client,
            client.stream("GET", f"/api/queries/{in_llm[0]}/events") as resp,
        ):
            statuses = [line for line in resp.iter_lines() if line.startswith("data:")]
        assert sum('"status":"queued"' in s for s in statuses) == 2
    finally:
        stack.stop()
        redis.stop()
        print(stack.logs())


def test_redis_outage_during_submissions(tmp_path, llm, target_url) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer(tmp_path).start()
    stack = make_stack(tmp_path, redis, llm, target_url)
    try:
        stack.start_api()
        stack.start_worker()
        with stack.token_client("alice", "alice-password") as client:
            before = [submit(client, f"before outage {i}") for i in range(5)]
            redis.stop()
            during = [submit(client, f"during outage {i}") for i in range(10)]
            redis = RedisServer(tmp_path, port=redis.port).start()
            after = [submit(client, f"after outage {i}") for i in range(5)]
            finals = [wait_terminal(client, i, timeout=90) for i in before + during + after]
        assert {f["status"] for f in finals} == {"succeeded"}, [(f["question"], f["status"]) for f in finals]
    finally:
        stack.stop()
        redis.stop()
        print(stack.logs())


def test_api_killed_while_attempts_run(tmp_path, llm, target_url) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer(tmp_path).start()
    stack = make_stack(tmp_path, redis, llm, target_url)
    try:
        llm.add(
            "api crash question", {"delay_s": 1, "then": {"sql": "SELECT 3 AS three", "explanation": "3"}}
        )
        api = stack.start_api()
        stack.start_worker()
        with stack.token_client("alice", "alice-password") as client:
            ids = [submit(client, "api crash question") for _ in range(3)]
            api.stop(signal.SIGKILL)
            time.sleep(1.5)
            stack.start_api()
            finals = [wait_terminal(client, i, timeout=30) for i in ids]
            assert [f["status"] for f in finals] == ["succeeded"] * 3
            rows = client.get(f"/api/queries/{ids[0]}/results").json()["rows"]
        assert rows == [[3]]
    finally:
        stack.stop()
        redis.stop()
        print(stack.logs())


def test_llm_outages(tmp_path, llm, target_url) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer(tmp_path).start()
    stack = make_stack(
        tmp_path, redis, llm, target_url, SQLAGENT_LLM_MAX_RETRIES="2", SQLAGENT_LLM_TIMEOUT_S="1"
    )
    try:
        llm.add(
            "flaky llm",
            {"fail_times": 2, "status": 503, "then": {"sql": "SELECT 4 AS four", "explanation": "4"}},
        )
        llm.add("dead llm", {"status": 503})
        llm.add("hanging llm", {"delay_s": 10, "then": {"sql": "SELECT 5", "explanation": "late"}})
        stack.start_api()
        stack.start_worker()
        with stack.token_client("alice", "alice-password") as client:
            flaky, dead, hanging = (submit(client, q) for q in ("flaky llm", "dead llm", "hanging llm"))
            flaky_final = wait_terminal(client, flaky)
            assert flaky_final["status"] == "succeeded" and flaky_final["rounds"] == 1
            dead_final = wait_terminal(client, dead)
            assert (dead_final["status"], dead_final["error_code"]) == ("failed", "LLM_SERVICE_UNAVAILABLE")
            assert "503" in dead_final["error_detail"]
            hanging_final = wait_terminal(client, hanging)
            assert (hanging_final["status"], hanging_final["error_code"]) == (
                "failed",
                "LLM_SERVICE_UNAVAILABLE",
            )
        assert len(llm.calls("dead llm")) == 3  # max_retries + 1 calls
    finally:
        stack.stop()
        redis.stop()
        print(stack.logs())


def test_deadline_timeout_cancel_and_idempotency(tmp_path, llm, target_url) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer(tmp_path).start()
    stack = make_stack(
        tmp_path,
        redis,
        llm,
        target_url,
        SQLAGENT_ATTEMPT_DEADLINE_S="2",
        SQLAGENT_STATEMENT_TIMEOUT_S="0.5",
        SQLAGENT_LEASE_S="0.6",
    )
    try:
        llm.add("beyond the deadline", {"delay_s": 5, "then": {"sql": "SELECT 6", "explanation": "late"}})
        llm.add("slow statement (timeout)", {"sql": SLOW_SQL, "explanation": "slow"})
        llm.add("to be cancelled", {"delay_s": 5, "then": {"sql": "SELECT 7", "explanation": "late"}})
        stack.start_api()
        with stack.token_client("alice", "alice-password") as client:
            # No worker yet: a queued attempt is cancelled on the spot.
            queued = submit(client, "cancel me while queued")
            resp = client.post(f"/api/queries/{queued}/cancel")
            assert resp.status_code == 202 and resp.json()["status"] == "cancelled"
            assert client.post(f"/api/queries/{queued}/cancel").json()["error_code"] == "INVALID_STATE"

            body = {"question": "idempotent question"}
            first = client.post("/api/queries", json=body, headers={"Idempotency-Key": "k-1"})
            again = client.post("/api/queries", json=body, headers={"Idempotency-Key": "k-1"})
            assert first.status_code == again.status_code == 202
            assert first.json()["id"] == again.json()["id"]
            other = client.post(
                "/api/queries", json={"question": "different"}, headers={"Idempotency-Key": "k-1"}
            )
            assert other.status_code == 409 and other.json()["error_code"] == "INVALID_STATE"

            stack.start_worker()
            late = submit(client, "beyond the deadline")
            slow = submit(client, "slow statement (timeout)")
            running = submit(client, "to be cancelled")
            wait_status(client, [running], {"generating"})
            assert client.post(f"/api/queries/{running}/cancel").status_code == 202

            late_final, slow_final, cancelled = (wait_terminal(client, i) for i in (late, slow, running))
            assert (late_final["status"], late_final["error_code"]) == ("timed_out", "OPERATION_TIMEOUT")
            assert (slow_final["status"], slow_final["error_code"]) == ("timed_out", "OPERATION_TIMEOUT")
            assert (cancelled["status"], cancelled["error_code"]) == ("cancelled", "CANCELLED")
            assert wait_terminal(client, first.json()["id"])["status"] == "succeeded"
    finally:
        stack.stop()
        redis.stop()
        print(stack.logs())
