"""The knowledge-base routes on a live API process (embedded mode, no LLM configured): CRUD and
pagination, admin-only writes, the guard on every saved example (SQLite demo and a real
PostgreSQL database), and an example created here answering a user's question end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from support.pg import create_pg_database_with, drop_pg_database, pg_url
from support.stack import Stack, embedded_api, free_port, wait_terminal

from shared.demo import DEMO_DB_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api-knowledge")]


SHOP_DDL = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text);
CREATE TABLE secrets (id int PRIMARY KEY, value text);
INSERT INTO customers VALUES (1, 'Ada', 'Paris'), (2, 'Bob', 'Oslo'), (3, 'Cy', 'Paris');
INSERT INTO secrets VALUES (1, 'hunter2');
"""

COUNTRIES_SQL = (
    "SELECT country, count(*) AS customers FROM customers GROUP BY country ORDER BY customers DESC, country"
)


@pytest.fixture(scope="module")
def shop_url() -> Iterator[str]:
    name = asyncio.run(create_pg_database_with(SHOP_DDL, prefix="sqlagent_kb"))
    try:
        yield pg_url(name)
    finally:
        asyncio.run(drop_pg_database(name))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, shop_url) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("api-knowledge")
    demo = f"sqlite:///{DEMO_DB_PATH}?immutable=1"
    targets_toml = f"""
[targets.default]
url = "{demo}"

[targets.paged]
url = "{demo}"

[targets.demo_limited]
url = "{demo}"
exclude = ["payments"]

[targets.shop]
url = "{shop_url}"
exclude = ["public.secrets"]

[targets.down]
url = "postgresql://postgres@127.0.0.1:{free_port()}/nothing"
"""
    with embedded_api(tmp, targets_toml) as stack:
        yield stack


@pytest.fixture(scope="module")
def user(stack: Stack) -> Iterator[httpx.Client]:
    with stack.token_client("alice", "alice-password") as client:
        yield client


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    with stack.token_client("root", "root-password") as client:
        yield client


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code, body
    return str(body["detail"])


def _create(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    resp = admin.post("/api/knowledge", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _count(client: httpx.Client, data_source: str) -> int:
    return int(
        client.get("/api/knowledge", params={"data_source": data_source}).json()["pagination"]["total_count"]
    )


def test_create_read_replace_delete(admin: httpx.Client, user: httpx.Client) -> None:
    resp = admin.post(
        "/api/knowledge",
        json={
            "question": "  How many products are there?  ",
            "sql": " SELECT count(*) AS n FROM products\n",
            "notes": "counts every product",
        },
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert set(created) == {"id", "question", "sql", "data_source", "notes", "created_at", "updated_at"}
    assert created["question"] == "How many products are there?"
    assert created["sql"] == "SELECT count(*) AS n FROM products"
    assert created["data_source"] == "default" and created["notes"] == "counts every product"
    assert resp.headers["location"] == f"/api/knowledge/{created['id']}"

    # Any user reads it.
    assert user.get(f"/api/knowledge/{created['id']}").json() == created

    # PUT replaces the whole example: omitted notes become null, data_source its default.
    replaced = admin.put(
        f"/api/knowledge/{created['id']}",
        json={
            "question": "How many payments are there?",
            "sql": "SELECT count(*) FROM payments",
            "data_source": "paged",
        },
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["id"] == created["id"] and body["data_source"] == "paged" and body["notes"] is None
    assert body["sql"] == "SELECT count(*) FROM payments" and body["created_at"] == created["created_at"]
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(created["updated_at"])
    assert user.get(f"/api/knowledge/{created['id']}").json() == body

    assert admin.delete(f"/api/knowledge/{created['id']}").status_code == 204
    _error(user.get(f"/api/knowledge/{created['id']}"), 404, "KNOWLEDGE_NOT_FOUND")
    _error(admin.delete(f"/api/knowledge/{created['id']}"), 404, "KNOWLEDGE_NOT_FOUND")
    _error(
        admin.put(f"/api/knowledge/{created['id']}", json={"question": "q", "sql": "SELECT 1"}),
        404,
        "KNOWLEDGE_NOT_FOUND",
    )


@pytest.mark.parametrize("bad_id", ["0", "abc", "99999999999999999999999", "12345678"])
def test_ids_that_do_not_exist_are_knowledge_not_found(user: httpx.Client, bad_id: str) -> None:
    _error(user.get(f"/api/knowledge/{bad_id}"), 404, "KNOWLEDGE_NOT_FOUND")


def test_pagination_and_the_data_source_filter(admin: httpx.Client, user: httpx.Client) -> None:
    ids = [
        _create(admin, question=f"paged question {n}", sql=f"SELECT {n} AS n", data_source="paged")["id"]
        for n in range(5)
    ]
    first = user.get("/api/knowledge", params={"data_source": "paged", "page_size": 2}).json()
    assert first["pagination"] == {"page": 1, "page_size": 2, "total_count": 5, "total_pages": 3}
    assert [e["id"] for e in first["items"]] == ids[:2]
    last = user.get("/api/knowledge", params={"data_source": "paged", "page": 3, "page_size": 2}).json()
    assert [e["id"] for e in last["items"]] == ids[4:]
    beyond = user.get("/api/knowledge", params={"data_source": "paged", "page": 4, "page_size": 2}).json()
    assert beyond["items"] == [] and beyond["pagination"]["total_count"] == 5

    everything = user.get("/api/knowledge", params={"page_size": 100}).json()
    assert set(ids) <= {e["id"] for e in everything["items"]}
    assert everything["pagination"]["page_size"] == 100 and everything["pagination"]["page"] == 1
    assert user.get("/api/knowledge").json()["pagination"]["page_size"] == 20

    _error(user.get("/api/knowledge", params={"page_size": 101}), 422, "VALIDATION_ERROR")
    _error(user.get("/api/knowledge", params={"page": 0}), 422, "VALIDATION_ERROR")
    _error(user.get("/api/knowledge", params={"data_source": "nope"}), 404, "DATA_SOURCE_NOT_FOUND")


def test_writes_are_admin_only_and_checked_before_the_body(stack: Stack, user: httpx.Client) -> None:
    valid = {"question": "q", "sql": "SELECT 1"}
    before = _count(user, "default")
    _error(user.post("/api/knowledge", json=valid), 403, "PERMISSION_DENIED")
    # Authorization comes before body validation: an invalid body from a user is still 403.
    _error(user.post("/api/knowledge", json={"bogus": 1}), 403, "PERMISSION_DENIED")
    _error(
        user.post("/api/knowledge", content=b"{not json", headers={"content-type": "application/json"}),
        403,
        "PERMISSION_DENIED",
    )
    _error(user.put("/api/knowledge/1", json={"bogus": 1}), 403, "PERMISSION_DENIED")
    _error(user.delete("/api/knowledge/1"), 403, "PERMISSION_DENIED")
    # A cookie session is held to the same rule.
    with stack.client("alice", "alice-password") as session:
        _error(session.post("/api/knowledge", json={"question": ""}), 403, "PERMISSION_DENIED")
    _error(httpx.post(f"{stack.base_url}/api/knowledge", json=valid), 401, "AUTH_SESSION_INVALID")
    assert _count(user, "default") == before  # nothing was written


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": "   ", "sql": "SELECT 1"}, "question"),
        ({"question": "x" * 5001, "sql": "SELECT 1"}, "question"),
        ({"question": "q", "sql": " \n "}, "sql"),
        ({"question": "q", "sql": "SELECT 1", "extra": True}, "extra"),
        ({"sql": "SELECT 1"}, "question"),
        ({"question": "q", "sql": "SELECT 1", "data_source": "bad name!"}, "data_source"),
    ],
)
def test_invalid_bodies_are_422(admin: httpx.Client, body: dict[str, Any], field: str) -> None:
    resp = admin.post("/api/knowledge", json=body)
    _error(resp, 422, "VALIDATION_ERROR")
    # msgspec names a missing or unknown field in the message, a bad value in the location.
    assert any(field in ".".join(e["loc"]) + e["msg"] for e in resp.json()["errors"]), resp.json()


def test_question_length_counts_after_trimming(admin: httpx.Client) -> None:
    example = _create(admin, question="  " + "y" * 5000 + "  ", sql="SELECT 1", data_source="paged")
    assert example["question"] == "y" * 5000
    assert admin.delete(f"/api/knowledge/{example['id']}").status_code == 204


@pytest.mark.parametrize(
    ("data_source", "sql", "rule"),
    [
        ("default", "DELETE FROM customers", "not_select"),
        ("default", "SELECT 1; SELECT 2", "single_statement"),
        ("default", "SELECT load_extension('x')", "function_not_allowed"),
        ("demo_limited", "SELECT * FROM payments", "relation_not_allowed"),
        ("default", "SELECT * FROM sqlite_master", "relation_not_allowed"),
        ("shop", "UPDATE customers SET name = 'x'", "not_select"),
        ("shop", "SELECT 1; DROP TABLE customers", "single_statement"),
        ("shop", "SELECT pg_sleep(1)", "function_not_allowed"),
        ("shop", "SELECT * FROM secrets", "relation_not_allowed"),
        ("shop", "SELECT * FROM pg_catalog.pg_authid", "schema_not_allowed"),
        ("shop", "WITH d AS (DELETE FROM customers RETURNING *) SELECT * FROM d", "data_modifying_cte"),
    ],
)
def test_sql_the_guard_refuses_is_not_saved(
    admin: httpx.Client, user: httpx.Client, data_source: str, sql: str, rule: str
) -> None:
    before = _count(user, data_source)
    resp = admin.post(
        "/api/knowledge", json={"question": f"guard {rule}", "sql": sql, "data_source": data_source}
    )
    detail = _error(resp, 422, "SQL_REJECTED")
    assert rule in detail
    assert _count(user, data_source) == before


@pytest.mark.parametrize(
    ("data_source", "sql"),
    [("default", "SELECT no_such_column FROM customers"), ("shop", "SELECT no_such_column FROM customers")],
)
def test_sql_that_does_not_compile_is_refused(admin: httpx.Client, data_source: str, sql: str) -> None:
    resp = admin.post("/api/knowledge", json={"question": "compile", "sql": sql, "data_source": data_source})
    detail = _error(resp, 422, "SQL_REJECTED")
    assert "failed to compile" in detail and "no_such_column" in detail


def test_replacing_with_refused_sql_keeps_the_example(admin: httpx.Client, user: httpx.Client) -> None:
    example = _create(
        admin, question="cities of customers", sql="SELECT city FROM customers", data_source="shop"
    )
    resp = admin.put(
        f"/api/knowledge/{example['id']}",
        json={"question": "cities", "sql": "SELECT value FROM secrets", "data_source": "shop"},
    )
    _error(resp, 422, "SQL_REJECTED")
    assert user.get(f"/api/knowledge/{example['id']}").json() == example


def test_the_stored_sql_is_the_admins_text(admin: httpx.Client) -> None:
    # The guard would run a normalised, schema-qualified form; the example keeps what was written.
    sql = "select name from customers where city = 'Paris' order by name;"
    example = _create(admin, question="customers in Paris", sql=sql, data_source="shop")
    assert example["sql"] == sql


def test_unknown_and_unreachable_data_sources(admin: httpx.Client) -> None:
    resp = admin.post("/api/knowledge", json={"question": "q", "sql": "SELECT 1", "data_source": "nope"})
    _error(resp, 404, "DATA_SOURCE_NOT_FOUND")
    resp = admin.post("/api/knowledge", json={"question": "q", "sql": "SELECT 1", "data_source": "down"})
    detail = _error(resp, 503, "SERVICE_UNAVAILABLE")
    assert "127.0.0.1" not in detail


def test_an_example_answers_the_question_without_an_llm(admin: httpx.Client, user: httpx.Client) -> None:
    question = "Which countries have the most customers, per the knowledge API?"
    _create(admin, question=question, sql=COUNTRIES_SQL, notes="verified by hand")
    resp = user.post("/api/queries", json={"question": question})
    assert resp.status_code == 202, resp.text
    final = wait_terminal(user, resp.json()["id"])
    assert final["status"] == "succeeded", final
    assert final["sql"] == COUNTRIES_SQL and final["rounds"] == 0

    # The same on PostgreSQL, where the stored text runs in its guarded form.
    pg_question = "Which customers live in Oslo, per the knowledge API?"
    _create(
        admin, question=pg_question, sql="SELECT name FROM customers WHERE city = 'Oslo'", data_source="shop"
    )
    resp = user.post("/api/queries", json={"question": pg_question, "data_source": "shop"})
    final = wait_terminal(user, resp.json()["id"])
    assert final["status"] == "succeeded" and final["rounds"] == 0, final
    rows = user.get(f"/api/queries/{final['id']}/results").json()["rows"]
    assert rows == [["Bob"]]

    # Without the example (and without an LLM) the same kind of question fails as SPEC says.
    resp = user.post("/api/queries", json={"question": "Which suppliers ship the most parcels?"})
    assert wait_terminal(user, resp.json()["id"])["error_code"] == "LLM_NOT_CONFIGURED"


def test_openapi_declares_each_status(stack: Stack) -> None:
    paths = httpx.get(f"{stack.base_url}/schema/openapi.json").json()["paths"]
    assert {"201", "401", "403", "404", "415", "422", "503"} <= set(
        paths["/api/knowledge"]["post"]["responses"]
    )
    assert {"200", "401", "404", "422"} <= set(paths["/api/knowledge"]["get"]["responses"])
    item = paths["/api/knowledge/{example_id}"]
    assert {"200", "403", "404", "422", "503"} <= set(item["put"]["responses"])
    assert {"204", "403", "404"} <= set(item["delete"]["responses"])
    assert {"200", "404"} <= set(item["get"]["responses"])
