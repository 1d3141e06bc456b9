"""The data-source routes on a live API process (embedded mode): the list, schema snapshots of a
real PostgreSQL database and of the bundled SQLite demo, refresh, and a target that is down."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from support.pg import create_pg_database_with, drop_pg_database, execute, pg_url
from support.stack import Stack, embedded_api, free_port

from shared.demo import DEMO_DB_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api-datasources")]


SHOP_DDL = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
COMMENT ON TABLE customers IS 'People who buy things';
COMMENT ON COLUMN customers.email IS 'Where receipts go';
CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    status text NOT NULL,
    total numeric(10, 2)
);
CREATE TABLE "OrderNotes" ("NoteId" int PRIMARY KEY, "Body" text);
CREATE TABLE salaries (customer_id int REFERENCES customers (id), amount int);
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Bob', NULL);
INSERT INTO orders VALUES (1, 1, 'paid', 10.50), (2, 2, 'open', 3.00);
INSERT INTO salaries VALUES (1, 100000);
"""


@pytest.fixture(scope="module")
def shop_url() -> Iterator[str]:
    name = asyncio.run(create_pg_database_with(SHOP_DDL, prefix="sqlagent_ds"))
    try:
        yield pg_url(name)
    finally:
        asyncio.run(drop_pg_database(name))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, shop_url) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("api-datasources")
    demo = f"sqlite:///{DEMO_DB_PATH}?immutable=1"
    targets_toml = f"""
[targets.default]
url = "{demo}"
description = "The demo shop"

[targets.shop]
url = "{shop_url}"
description = "A shop on PostgreSQL"
exclude = ["public.salaries"]
sample_values = true

[targets.shop_twin]
url = "{shop_url}"

[targets.demo_limited]
url = "{demo}"
exclude = ["payments"]

[targets.down]
url = "postgresql://postgres@127.0.0.1:{free_port()}/nothing"
description = "Nothing listens there"
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


def _stored_snapshots(stack: Stack, data_source: str) -> list[str]:
    conn = sqlite3.connect(Path(stack.workdir) / "app.db")
    try:
        rows = conn.execute(
            "SELECT snapshot FROM schema_snapshots WHERE data_source = ? ORDER BY id", (data_source,)
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code, body
    return str(body["detail"])


def test_the_list_names_every_data_source_without_urls(user: httpx.Client, shop_url: str) -> None:
    resp = user.get("/api/data-sources")
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert [i["name"] for i in items] == ["default", "shop", "shop_twin", "demo_limited", "down"]
    assert items[1] == {"name": "shop", "dialect": "postgresql", "description": "A shop on PostgreSQL"}
    assert all(set(i) == {"name", "dialect", "description"} for i in items)
    assert "postgresql://" not in resp.text and "sqlite://" not in resp.text


def test_postgres_schema_is_taken_on_first_request_and_shaped_as_the_spec(
    stack: Stack, user: httpx.Client, shop_url: str
) -> None:
    assert _stored_snapshots(stack, "shop") == []
    resp = user.get("/api/data-sources/shop/schema")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"data_source", "taken_at", "tables"} and body["data_source"] == "shop"
    datetime.fromisoformat(body["taken_at"])
    tables = {t["name"]: t for t in body["tables"]}
    # The excluded table is absent; the mixed-case one keeps its exact spelling.
    assert set(tables) == {"customers", "orders", "OrderNotes"}
    for table in body["tables"]:
        assert set(table) == {"schema", "name", "comment", "columns", "foreign_keys"}
        assert table["schema"] == "public"
        for column in table["columns"]:
            assert set(column) == {"name", "type", "nullable", "primary_key", "comment"}

    customers = tables["customers"]
    assert customers["comment"] == "People who buy things"
    assert customers["columns"] == [
        {"name": "id", "type": "integer", "nullable": False, "primary_key": True, "comment": None},
        {"name": "name", "type": "text", "nullable": False, "primary_key": False, "comment": None},
        {
            "name": "email",
            "type": "text",
            "nullable": True,
            "primary_key": False,
            "comment": "Where receipts go",
        },
    ]
    assert customers["foreign_keys"] == []
    assert tables["orders"]["foreign_keys"] == [
        {"columns": ["customer_id"], "ref_table": "public.customers", "ref_columns": ["id"]}
    ]
    assert [c["type"] for c in tables["orders"]["columns"]] == ["integer", "integer", "text", "numeric(10,2)"]
    assert [c["name"] for c in tables["OrderNotes"]["columns"]] == ["NoteId", "Body"]
    assert tables["OrderNotes"]["comment"] is None

    # The stored snapshot has sample values (sample_values = true) — they stay with the LLM.
    stored = _stored_snapshots(stack, "shop")
    assert len(stored) == 1 and '"sample_values":["Ada","Bob"]' in stored[0]
    assert "sample_values" not in resp.text and "Ada" not in resp.text
    assert "postgresql://" not in resp.text and shop_url.rsplit("/", 1)[1] not in resp.text
    assert "salaries" not in resp.text

    # The second request answers the stored snapshot rather than taking another.
    again = user.get("/api/data-sources/shop/schema").json()
    assert again == body and len(_stored_snapshots(stack, "shop")) == 1


def test_concurrent_first_requests_share_one_snapshot(stack: Stack, user: httpx.Client) -> None:
    assert _stored_snapshots(stack, "shop_twin") == []
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: user.get("/api/data-sources/shop_twin/schema"), range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    assert len({r.json()["taken_at"] for r in responses}) == 1
    assert len(_stored_snapshots(stack, "shop_twin")) == 1


def test_refresh_is_admin_only_and_takes_a_newer_snapshot(
    stack: Stack, user: httpx.Client, admin: httpx.Client, shop_url: str
) -> None:
    first = user.get("/api/data-sources/shop/schema").json()
    asyncio.run(
        execute(shop_url, "CREATE TABLE refunds (id int PRIMARY KEY, order_id int REFERENCES orders (id))")
    )
    try:
        # Until refreshed, the stored snapshot is what everyone sees.
        assert "refunds" not in {
            t["name"] for t in user.get("/api/data-sources/shop/schema").json()["tables"]
        }
        _error(user.post("/api/data-sources/shop/schema/refresh"), 403, "PERMISSION_DENIED")

        resp = admin.post("/api/data-sources/shop/schema/refresh")
        assert resp.status_code == 200, resp.text
        refreshed = resp.json()
        assert datetime.fromisoformat(refreshed["taken_at"]) > datetime.fromisoformat(first["taken_at"])
        refunds = next(t for t in refreshed["tables"] if t["name"] == "refunds")
        assert refunds["foreign_keys"] == [
            {"columns": ["order_id"], "ref_table": "public.orders", "ref_columns": ["id"]}
        ]
        assert "sample_values" not in resp.text
        assert user.get("/api/data-sources/shop/schema").json() == refreshed
    finally:
        asyncio.run(execute(shop_url, "DROP TABLE refunds"))


def test_sqlite_schema_and_its_exclusions(user: httpx.Client) -> None:
    full = user.get("/api/data-sources/default/schema").json()
    limited = user.get("/api/data-sources/demo_limited/schema").json()
    full_names = {t["name"] for t in full["tables"]}
    assert {"customers", "orders", "order_items", "payments"} <= full_names
    assert {t["name"] for t in limited["tables"]} == full_names - {"payments"}
    assert all(t["schema"] == "main" for t in full["tables"])
    items = next(t for t in full["tables"] if t["name"] == "order_items")
    assert {"columns": ["order_id"], "ref_table": "orders", "ref_columns": ["id"]} in items["foreign_keys"]
    assert "sqlite:" not in str(full) and str(DEMO_DB_PATH) not in str(full)


def test_unknown_data_source_is_404(user: httpx.Client, admin: httpx.Client) -> None:
    _error(user.get("/api/data-sources/nope/schema"), 404, "DATA_SOURCE_NOT_FOUND")
    _error(admin.post("/api/data-sources/nope/schema/refresh"), 404, "DATA_SOURCE_NOT_FOUND")


def test_a_target_that_is_down_is_503_not_500(user: httpx.Client, admin: httpx.Client) -> None:
    detail = _error(user.get("/api/data-sources/down/schema"), 503, "SERVICE_UNAVAILABLE")
    assert "down" in detail and "127.0.0.1" not in detail and "postgresql" not in detail
    _error(admin.post("/api/data-sources/down/schema/refresh"), 503, "SERVICE_UNAVAILABLE")
    # The process is fine afterwards, and other data sources still answer.
    assert user.get("/api/data-sources/default/schema").status_code == 200


def test_anonymous_callers_are_401(stack: Stack) -> None:
    resp = httpx.get(f"{stack.base_url}/api/data-sources/shop/schema")
    _error(resp, 401, "AUTH_SESSION_INVALID")


def test_openapi_declares_each_status(stack: Stack) -> None:
    paths = httpx.get(f"{stack.base_url}/schema/openapi.json").json()["paths"]
    refresh = paths["/api/data-sources/{name}/schema/refresh"]["post"]["responses"]
    assert {"200", "401", "403", "404", "503"} <= set(refresh)
    schema = paths["/api/data-sources/{name}/schema"]["get"]["responses"]
    assert {"200", "401", "404", "503"} <= set(schema)
    assert "/api/data-sources" in paths
