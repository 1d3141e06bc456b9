"""The SSE status stream against real processes: an API process relaying events that a Celery
worker process publishes on Redis. History order and ids, Last-Event-ID resume, heartbeats, the
stream closing after the terminal event, authorization, and live delivery across processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import create_pg_database, drop_pg_database, pg_url
from support.stack import Stack, base_env, cli, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sse")]

HEARTBEAT_S = 0.5
COUNT = "SELECT count(*) AS n FROM products"


@dataclass
class Frame:
    """One SSE frame: an event (id, event, data) or a comment."""

    id: str | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)


def frames(resp: httpx.Response) -> Iterator[Frame]:
    frame = Frame()
    for line in resp.iter_lines():
        if line.startswith(":"):
            frame.comments.append(line[1:].strip())
        elif line.startswith("id:"):
            frame.id = line[3:].strip()
        elif line.startswith("event:"):
            frame.event = line[6:].strip()
        elif line.startswith("data:"):
            frame.data = json.loads(line[5:].strip())
        elif line == "":
            if frame.data is not None or frame.comments:
                yield frame
            frame = Frame()


def read_all(client: httpx.Client, attempt_id: str, **headers: str) -> list[Frame]:
    with client.stream("GET", f"/api/queries/{attempt_id}/events", headers=headers) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return list(frames(resp))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sse_stack(request, tmp_path_factory, redis_url, llm) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp(f"sse-{request.param}")
    pg_name = asyncio.run(create_pg_database()) if request.param == "postgresql" else None
    stack = Stack(
        env=base_env(
            SQLAGENT_DATABASE_URL=pg_url(pg_name) if pg_name else f"sqlite:///{tmp}/app.db",
            SQLAGENT_BROKER_URL=redis_url,
            SQLAGENT_LLM_BASE_URL=llm.base_url,
            SQLAGENT_SSE_HEARTBEAT_S=str(HEARTBEAT_S),
        ),
        workdir=tmp,
    )
    try:
        assert cli("migrate", env=stack.env).returncode == 0
        stack.create_user("alice", "alice-password")
        stack.create_user("bob", "bob-password")
        stack.start_api()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()
        if request.session.testsfailed:
            print(stack.logs())
        if pg_name:
            asyncio.run(drop_pg_database(pg_name))


@pytest.fixture(scope="module")
def quiet_api(sse_stack: Stack) -> Iterator[Stack]:
    """A second API process on the same database and Redis whose heartbeat never fires during a
    test: it never re-reads the rows on its own, so whatever its streams send after the history
    was relayed live."""
    workdir = sse_stack.workdir / "quiet"
    workdir.mkdir(exist_ok=True)
    quiet = Stack(env={**sse_stack.env, "SQLAGENT_SSE_HEARTBEAT_S": "600"}, workdir=workdir)
    quiet.start_api()
    yield quiet
    quiet.stop()


def test_a_subscriber_sees_every_status_live_from_a_worker_process(
    sse_stack: Stack, quiet_api: Stack, llm
) -> None:  # type: ignore[no-untyped-def]
    for worker in [p for p in sse_stack.processes if p.name == "worker" and p.proc.poll() is None]:
        worker.stop()
    question = "How many products are there? (sse live)"
    llm.add(question, {"sql": COUNT, "explanation": "count"})
    with quiet_api.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        with client.stream("GET", f"/api/queries/{attempt_id}/events") as resp:
            stream = frames(resp)
            first = next(stream)
            assert (first.id, first.data["status"]) == ("1", "queued")  # type: ignore[index]
            # Subscribed before any worker exists: everything after `queued` has to come live,
            # from the worker process through Redis to this API process.
            sse_stack.start_worker()
            rest = list(stream)
    assert not [f for f in rest if f.comments]
    assert [f.data["status"] for f in rest] == ["generating", "validating", "executing", "succeeded"]  # type: ignore[index]
    assert [f.id for f in rest] == ["2", "3", "4", "5"]


def test_history_order_ids_payload_and_close(sse_stack: Stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "How many products? (sse history)"
    llm.add(question, {"sql": COUNT, "explanation": "count"})
    with sse_stack.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        wait_terminal(client, attempt_id)
        started = time.monotonic()
        events = [f for f in read_all(client, attempt_id) if f.data is not None]
        # The stream ended by itself after the terminal event (a read would otherwise block).
        assert time.monotonic() - started < 10
    assert [f.id for f in events] == ["1", "2", "3", "4", "5"]
    assert all(f.event == "status" for f in events)
    assert [f.data["status"] for f in events] == [
        "queued",
        "generating",
        "validating",
        "executing",
        "succeeded",
    ]  # type: ignore[index]
    for f in events:
        assert f.data is not None
        assert f.data["id"] == attempt_id and str(f.data["seq"]) == f.id
        assert f.data["at"].endswith(("Z", "+00:00")) and "error_code" not in f.data


def test_last_event_id_resumes_exactly_after_that_event(sse_stack: Stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "What is the weather? (sse resume)"
    llm.add(question, {"sql": None, "explanation": "no weather data here"})
    with sse_stack.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        wait_terminal(client, attempt_id)
        full = [f for f in read_all(client, attempt_id) if f.data is not None]
        assert [f.data["status"] for f in full] == ["queued", "generating", "failed"]  # type: ignore[index]
        assert full[-1].data["error_code"] == "QUESTION_UNANSWERABLE" and full[-1].data["detail"]  # type: ignore[index]
        for after in range(len(full)):
            resumed = [f for f in read_all(client, attempt_id, **{"Last-Event-ID": str(after + 1)}) if f.data]
            assert [f.id for f in resumed] == [f.id for f in full[after + 1 :]]


def test_heartbeat_comments_while_waiting_then_close(sse_stack: Stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "How many products, slowly? (sse heartbeat)"
    llm.add(question, {"delay_s": HEARTBEAT_S * 5, "then": {"sql": COUNT, "explanation": "count"}})
    with sse_stack.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        got = read_all(client, attempt_id)
    heartbeats = [c for f in got for c in f.comments]
    assert heartbeats and set(heartbeats) == {"heartbeat"}
    statuses = [f.data["status"] for f in got if f.data is not None]
    assert statuses == ["queued", "generating", "validating", "executing", "succeeded"]


def test_only_the_owner_may_stream(sse_stack: Stack) -> None:
    with sse_stack.client("alice", "alice-password") as alice, sse_stack.client("bob", "bob-password") as bob:
        attempt_id = alice.post("/api/queries", json={"question": "alice's private question (sse)"}).json()[
            "id"
        ]
        resp = bob.get(f"/api/queries/{attempt_id}/events")
        assert resp.status_code == 404 and resp.json()["error_code"] == "QUERY_NOT_FOUND"
        assert bob.get("/api/queries/no-such-attempt/events").json()["error_code"] == "QUERY_NOT_FOUND"
    anonymous = httpx.get(f"{sse_stack.base_url}/api/queries/{attempt_id}/events", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "AUTH_SESSION_INVALID"


def test_many_concurrent_streams_all_end_right(sse_stack: Stack, llm) -> None:  # type: ignore[no-untyped-def]
    """Streams on one API process share one pub/sub connection; each still gets its own events."""
    questions = [f"How many products? (sse fan {i})" for i in range(20)]
    for q in questions:
        llm.add(q, {"sql": COUNT, "explanation": "count"})

    async def run() -> list[list[str]]:
        async with httpx.AsyncClient(base_url=sse_stack.base_url, timeout=30) as client:
            assert (
                await client.post("/api/auth/login", json={"username": "alice", "password": "alice-password"})
            ).status_code == 200
            ids = [(await client.post("/api/queries", json={"question": q})).json()["id"] for q in questions]

            async def follow(attempt_id: str) -> list[str]:
                async with client.stream("GET", f"/api/queries/{attempt_id}/events") as resp:
                    return [
                        json.loads(line[5:])["status"]
                        async for line in resp.aiter_lines()
                        if line.startswith("data:")
                    ]

            return await asyncio.gather(*(follow(i) for i in ids))

    for statuses in asyncio.run(run()):
        assert statuses == ["queued", "generating", "validating", "executing", "succeeded"]


def _open_streams(stack: Stack) -> float:
    metrics = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    line = next(x for x in metrics.splitlines() if x.startswith("sqlagent_sse_streams_open"))
    return float(line.split()[-1])


def test_a_client_that_hangs_up_frees_its_stream_at_once(quiet_api: Stack, llm) -> None:  # type: ignore[no-untyped-def]
    """No heartbeat and no event would wake this stream for seconds: only noticing the hang-up can
    end it, which is what keeps abandoned streams from piling up."""
    question = "How many products, very slowly? (sse hang-up)"
    llm.add(question, {"delay_s": 5, "then": {"sql": COUNT, "explanation": "count"}})
    with quiet_api.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        with client.stream("GET", f"/api/queries/{attempt_id}/events") as resp:
            stream = frames(resp)  # kept: dropping the iterator would close the connection
            first = next(stream)
            assert first.data is not None and first.data["seq"] >= 1
            assert _open_streams(quiet_api) == 1
    deadline = time.monotonic() + 2
    while _open_streams(quiet_api) != 0:
        assert time.monotonic() < deadline, "the stream outlived its client"
        time.sleep(0.05)
