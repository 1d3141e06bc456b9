"""Schema snapshots of a real PostgreSQL database: schemas, exclusions, keys, comments, views,
privileges and sample values."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared.pipeline_errors import TargetUnavailable
from shared.targets.config import DataSource
from shared.targets.introspect import (
    ColumnInfo,
    ForeignKey,
    SchemaSnapshot,
    introspect,
    snapshot_policy_tables,
)

SETUP = """
CREATE SCHEMA sales;
CREATE SCHEMA hr;
CREATE TYPE sales.tier AS ENUM ('gold', 'silver');
CREATE TABLE sales.customers (
    id int PRIMARY KEY, name text NOT NULL, country varchar(2), status text, tier sales.tier
);
COMMENT ON TABLE sales.customers IS 'People who buy';
COMMENT ON COLUMN sales.customers.status IS 'Lifecycle stage';
INSERT INTO sales.customers
SELECT g, 'customer ' || g, chr(65 + g % 25) || chr(65 + g % 25),
       (ARRAY['new', 'active', 'churned'])[1 + g % 3], (ARRAY['gold', 'silver'])[1 + g % 2]::sales.tier
FROM generate_series(1, 60) g;
CREATE TABLE sales.orders (
    id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES sales.customers (id),
    placed_at timestamptz, total numeric(10, 2), dropped int
);
ALTER TABLE sales.orders DROP COLUMN dropped;
CREATE TABLE sales.order_lines (
    order_id bigint REFERENCES sales.orders (id), line_no int, product text, qty int,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE sales.shipments (
    id int PRIMARY KEY, line_no int, order_id bigint,
    FOREIGN KEY (line_no, order_id) REFERENCES sales.order_lines (line_no, order_id)
);
ALTER TABLE sales.order_lines ADD UNIQUE (line_no, order_id);
CREATE VIEW sales.big_orders AS SELECT id, total FROM sales.orders WHERE total > 100;
CREATE MATERIALIZED VIEW sales.order_counts AS
    SELECT customer_id, count(*) AS n FROM sales.orders GROUP BY customer_id;
CREATE TABLE sales."MixedCase" ("Id" int);
CREATE TABLE hr.salaries (emp text, amount numeric);
CREATE TABLE hr.employees (id int PRIMARY KEY, name text, ssn text);
CREATE TABLE public.events (id int, kind text) PARTITION BY LIST (kind);
CREATE TABLE public.events_a PARTITION OF public.events FOR VALUES IN ('a');
CREATE TABLE public.events_b PARTITION OF public.events FOR VALUES IN ('b');
"""


@pytest.fixture(scope="module")
async def db_url(make_target_db) -> str:
    return await make_target_db(SETUP)


def source(url: str, **kwargs) -> DataSource:
    return DataSource(name="pg", url=url, dialect="postgresql", **kwargs)


def names(snapshot: SchemaSnapshot) -> list[str]:
    return [f"{t.schema}.{t.name}" for t in snapshot.tables]


def table(snapshot: SchemaSnapshot, qualified: str):
    return next(t for t in snapshot.tables if f"{t.schema}.{t.name}" == qualified)


async def test_every_usable_schema_by_default(db_url):
    before = datetime.now(UTC)
    snapshot = await introspect(source(db_url))
    assert snapshot.data_source == "pg"
    assert before - timedelta(seconds=1) <= snapshot.taken_at <= datetime.now(UTC)
    assert snapshot.taken_at.tzinfo is not None
    assert names(snapshot) == [
        "hr.employees",
        "hr.salaries",
        "public.events",  # partitions are hidden behind their parent
        "sales.MixedCase",
        "sales.big_orders",
        "sales.customers",
        "sales.order_counts",
        "sales.order_lines",
        "sales.orders",
        "sales.shipments",
    ]


async def test_columns_keys_comments(db_url):
    snapshot = await introspect(source(db_url, schemas=("sales",)))
    customers = table(snapshot, "sales.customers")
    assert customers.comment == "People who buy"
    assert customers.columns == [
        ColumnInfo(name="id", type="integer", nullable=False, primary_key=True),
        ColumnInfo(name="name", type="text", nullable=False, primary_key=False),
        ColumnInfo(name="country", type="character varying(2)", nullable=True, primary_key=False),
        ColumnInfo(name="status", type="text", nullable=True, primary_key=False, comment="Lifecycle stage"),
        ColumnInfo(name="tier", type="sales.tier", nullable=True, primary_key=False),
    ]
    orders = table(snapshot, "sales.orders")
    assert [(c.name, c.type) for c in orders.columns] == [
        ("id", "bigint"),
        ("customer_id", "integer"),
        ("placed_at", "timestamp with time zone"),
        ("total", "numeric(10,2)"),
    ]
    assert orders.foreign_keys == [
        ForeignKey(columns=["customer_id"], ref_table="sales.customers", ref_columns=["id"])
    ]
    lines = table(snapshot, "sales.order_lines")
    assert [c.name for c in lines.columns if c.primary_key] == ["order_id", "line_no"]
    shipments = table(snapshot, "sales.shipments")
    assert shipments.foreign_keys == [
        ForeignKey(
            columns=["line_no", "order_id"],
            ref_table="sales.order_lines",
            ref_columns=["line_no", "order_id"],
        )
    ]
    view = table(snapshot, "sales.big_orders")
    assert [(c.name, c.type, c.primary_key) for c in view.columns] == [
        ("id", "bigint", False),
        ("total", "numeric(10,2)", False),
    ]
    assert table(snapshot, "sales.order_counts").columns[1].name == "n"
    assert table(snapshot, "sales.MixedCase").columns[0].name == "Id"
    assert all(c.sample_values is None for t in snapshot.tables for c in t.columns)


async def test_exclude_hides_tables_and_foreign_keys_to_them(db_url):
    snapshot = await introspect(
        source(db_url, schemas=("sales", "hr"), exclude=("sales.order_lines", "HR.Salaries", "big_orders"))
    )
    assert "sales.order_lines" not in names(snapshot)
    assert "hr.salaries" not in names(snapshot)
    assert "sales.big_orders" not in names(snapshot)  # a bare name matches in any schema
    assert table(snapshot, "sales.shipments").foreign_keys == []
    snapshot = await introspect(source(db_url, exclude=("hr.*",)))
    assert not [n for n in names(snapshot) if n.startswith("hr.")]
    assert snapshot_policy_tables(snapshot) >= {("sales", "mixedcase"), ("public", "events")}
    assert ("hr", "employees") not in snapshot_policy_tables(snapshot)


async def test_sample_values_of_small_text_columns(db_url):
    snapshot = await introspect(source(db_url, schemas=("sales",), sample_values=True))
    customers = {c.name: c for c in table(snapshot, "sales.customers").columns}
    assert customers["status"].sample_values == ["active", "churned", "new"]
    assert customers["tier"].sample_values == ["gold", "silver"]  # enums count as text
    assert customers["country"].sample_values is None  # 25 distinct values: too many
    assert customers["name"].sample_values is None
    assert customers["id"].sample_values is None  # not text
    assert all(c.sample_values is None for c in table(snapshot, "sales.big_orders").columns)  # views: no


@pytest.fixture
async def limited_role(db_url):
    role = f"sqlagent_reader_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            f"""
            CREATE ROLE {role} LOGIN;
            GRANT USAGE ON SCHEMA sales TO {role};
            GRANT SELECT ON sales.customers, sales.orders TO {role};
            GRANT SELECT (id, name) ON hr.employees TO {role};
            """
        )
        yield role
    finally:
        await conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        await conn.close()


async def test_only_what_the_role_may_read(db_url, limited_role):
    url = db_url.replace("://postgres@", f"://{limited_role}@")
    snapshot = await introspect(source(url))
    assert names(snapshot) == ["sales.customers", "sales.orders"]  # public.events: no SELECT
    # hr has no USAGE grant: its column-level grant on employees does not make it visible.
    assert not [n for n in names(snapshot) if n.startswith("hr.")]
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(f"GRANT USAGE ON SCHEMA hr TO {limited_role}")
    finally:
        await conn.close()
    snapshot = await introspect(source(url, schemas=("hr",)))
    assert [(t.name, [c.name for c in t.columns]) for t in snapshot.tables] == [("employees", ["id", "name"])]


async def test_many_tables_in_few_round_trips(make_target_db):
    url = await make_target_db(
        """
        DO $$ BEGIN
        FOR i IN 1..300 LOOP
            EXECUTE format(
                'CREATE TABLE t%s (id int PRIMARY KEY, parent int REFERENCES t%s (id), label text)',
                i, greatest(i - 1, 1));
        END LOOP;
        END $$;
        """
    )
    started = time.monotonic()
    snapshot = await introspect(source(url, schemas=("public",)))
    elapsed = time.monotonic() - started
    assert len(snapshot.tables) == 300
    assert table(snapshot, "public.t7").foreign_keys == [
        ForeignKey(columns=["parent"], ref_table="public.t6", ref_columns=["id"])
    ]
    print(f"introspected 300 tables in {elapsed * 1000:.0f} ms")
    assert elapsed < 2, elapsed


async def test_unreachable_target():
    with pytest.raises(TargetUnavailable):
        await introspect(source("postgresql://postgres@127.0.0.1:1/nowhere"))
