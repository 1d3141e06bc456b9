"""One question through the whole architecture: API → app database → Celery on Redis → worker →
LLM test server → read-only execution on the bundled demo database → rows back over REST."""

from __future__ import annotations

import csv
import io
import json

import pytest
from integration.conftest import demo_rows
from support.stack import wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]

TOP_COUNTRIES = (
    "SELECT country, count(*) AS customers FROM customers GROUP BY country ORDER BY customers DESC, country"
)


def test_a_question_reaches_succeeded_with_the_right_rows(stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "Which countries have the most customers? (e2e)"
    llm.add(question, {"sql": TOP_COUNTRIES, "explanation": "count per country"})
    with stack.client("alice", "alice-password") as client:
        resp = client.post("/api/queries", json={"question": f"  {question}  "})
        assert resp.status_code == 202, resp.text
        created = resp.json()
        assert created["status"] == "queued" and created["question"] == question
        assert resp.headers["location"] == f"/api/queries/{created['id']}"

        final = wait_terminal(client, created["id"])
        assert final["status"] == "succeeded", final
        assert final["sql"] == TOP_COUNTRIES and final["rounds"] == 1 and final["error_code"] is None
        expected = demo_rows(TOP_COUNTRIES)
        assert final["row_count"] == len(expected) and final["truncated"] is False
        timings = final["timings"]
        assert timings["total_ms"] >= timings["queue_ms"] >= 0 and timings["llm_ms"] is not None

        page = client.get(f"/api/queries/{created['id']}/results", params={"page_size": 5}).json()
        assert [c["name"] for c in page["columns"]] == ["country", "customers"]
        assert page["rows"] == expected[:5]
        assert page["pagination"] == {
            "page": 1,
            "page_size": 5,
            "total_count": len(expected),
            "total_pages": -(-len(expected) // 5),
        }
        last = client.get(f"/api/queries/{created['id']}/results", params={"page": 3, "page_size": 5}).json()
        assert last["rows"] == expected[10:15]

        text = client.get(f"/api/queries/{created['id']}/results.csv").text
        parsed = list(csv.reader(io.StringIO(text)))
        assert parsed[0] == ["country", "customers"]
        assert parsed[1:] == [[str(v) for v in row] for row in expected]

        # The prompt carried the question verbatim as the last user message.
        request = llm.calls(question)[-1]
        assert request["messages"][-1] == {"role": "user", "content": question}

        listed = client.get("/api/queries").json()
        assert listed["items"][0]["id"] == created["id"]


def test_status_history_is_recorded_in_order(stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "How many products are there? (history)"
    llm.add(question, {"sql": "SELECT count(*) AS n FROM products", "explanation": "n"})
    with stack.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        wait_terminal(client, attempt_id)
        with client.stream("GET", f"/api/queries/{attempt_id}/events") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[5:]) for line in resp.iter_lines() if line.startswith("data:")]
    assert [e["status"] for e in events] == ["queued", "generating", "validating", "executing", "succeeded"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]


def test_a_repair_round_fixes_an_unknown_column(stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "Average unit price of products (repair)"
    llm.add(
        question,
        {"sql": "SELECT avg(price) FROM products", "explanation": "first try"},
        {"sql": "SELECT round(avg(unit_price), 2) AS avg_price FROM products", "explanation": "fixed"},
    )
    with stack.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        final = wait_terminal(client, attempt_id)
    assert final["status"] == "succeeded", final
    assert final["rounds"] == 2
    repair = llm.calls(question)[-1]["messages"]
    assert repair[-2]["role"] == "assistant"
    assert repair[-1]["role"] == "user" and repair[-1]["content"].startswith(question)
    assert "price" in repair[-1]["content"]


def test_a_write_is_rejected_after_the_last_round(stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "Delete all the customers please (attack)"
    llm.add(question, {"sql": "DELETE FROM customers", "explanation": "as asked"})
    with stack.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        final = wait_terminal(client, attempt_id)
    assert final["status"] == "rejected" and final["error_code"] == "SQL_REJECTED", final
    assert final["rounds"] == 3
    assert demo_rows("SELECT count(*) FROM customers")[0][0] > 0


def test_unanswerable_question(stack, llm) -> None:  # type: ignore[no-untyped-def]
    question = "What is the weather in Paris? (idk)"
    llm.add(question, {"sql": None, "explanation": "The database has no weather data."})
    with stack.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        final = wait_terminal(client, attempt_id)
        assert final["status"] == "failed" and final["error_code"] == "QUESTION_UNANSWERABLE"
        assert "weather" in final["error_detail"]
        resp = client.get(f"/api/queries/{attempt_id}/results")
        assert resp.status_code == 409 and resp.json()["error_code"] == "INVALID_STATE"


def test_users_see_only_their_own_attempts(stack, llm) -> None:  # type: ignore[no-untyped-def]
    with stack.client("alice", "alice-password") as alice, stack.client("bob", "bob-password") as bob:
        attempt_id = alice.post("/api/queries", json={"question": "private question of alice"}).json()["id"]
        for path in ("", "/results", "/results.csv", "/events"):
            resp = bob.get(f"/api/queries/{attempt_id}{path}")
            assert resp.status_code == 404 and resp.json()["error_code"] == "QUERY_NOT_FOUND", path
        assert all(a["id"] != attempt_id for a in bob.get("/api/queries").json()["items"])
    with stack.client("root", "root-password") as admin:
        assert admin.get(f"/api/queries/{attempt_id}").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"question": ""}, 422, "VALIDATION_ERROR"),
        ({"question": "   "}, 422, "VALIDATION_ERROR"),
        ({"question": "x" * 6000}, 422, "VALIDATION_ERROR"),
        ({"question": 42}, 422, "VALIDATION_ERROR"),
        ({}, 422, "VALIDATION_ERROR"),
        ({"question": "ok", "extra": 1}, 422, "VALIDATION_ERROR"),
        ({"question": "ok", "data_source": "nope"}, 404, "DATA_SOURCE_NOT_FOUND"),
    ],
)
def test_bad_submissions(stack, body, status, code) -> None:  # type: ignore[no-untyped-def]
    with stack.client("alice", "alice-password") as client:
        resp = client.post("/api/queries", json=body)
    assert resp.status_code == status, resp.text
    payload = resp.json()
    assert payload["error_code"] == code and payload["detail"]
    if status == 422:
        assert payload["errors"] and all("loc" in e and "msg" in e for e in payload["errors"])


def test_malformed_json_and_unknown_ids(stack) -> None:  # type: ignore[no-untyped-def]
    with stack.client("alice", "alice-password") as client:
        resp = client.post("/api/queries", content=b"{not json", headers={"content-type": "application/json"})
        assert resp.status_code == 422 and resp.json()["error_code"] == "VALIDATION_ERROR"
        assert resp.json()["errors"][0]["loc"] == ["body"]
        resp = client.get("/api/queries/00000000-0000-0000-0000-000000000000")
        assert resp.status_code == 404 and resp.json()["error_code"] == "QUERY_NOT_FOUND"
        resp = client.get("/api/nothing-here")
        assert resp.status_code == 404 and resp.json()["error_code"] == "NOT_FOUND"
        resp = client.put("/api/queries", json={})
        assert resp.status_code == 405 and resp.json()["error_code"] == "METHOD_NOT_ALLOWED"
        resp = client.get("/api/queries", params={"page": 0})
        assert resp.status_code == 422 and resp.json()["error_code"] == "VALIDATION_ERROR"
    resp = stack_anonymous(stack).get("/api/queries")
    assert resp.status_code == 401 and resp.json()["error_code"] == "AUTH_SESSION_INVALID"


def stack_anonymous(stack):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.Client(base_url=stack.base_url)
