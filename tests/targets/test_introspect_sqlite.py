"""Schema snapshots of SQLite files, and the prompt text rendered from snapshots."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from shared.pipeline_errors import TargetUnavailable
from shared.targets.config import DataSource
from shared.targets.introspect import (
    ColumnInfo,
    ForeignKey,
    SchemaSnapshot,
    TableInfo,
    introspect,
    render_schema,
    snapshot_policy_tables,
)


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, status VARCHAR(10), Score);
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers,
            placed_at TEXT
        );
        CREATE TABLE order_lines (
            order_id INTEGER, line_no INTEGER, product TEXT,
            PRIMARY KEY (order_id, line_no),
            FOREIGN KEY (order_id) REFERENCES orders (id)
        );
        CREATE TABLE returns (
            order_id INTEGER, line_no INTEGER,
            FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no)
        );
        CREATE TABLE secrets (s TEXT);
        CREATE VIEW active_customers AS SELECT id, name FROM customers WHERE status = 'active';
        CREATE VIEW broken AS SELECT * FROM gone;
        """
    )
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?)",
        [(i, f"customer {i}", ["new", "active", "churned"][i % 3], i) for i in range(1, 61)],
    )
    conn.commit()
    conn.close()
    return path


def lite(path, **kwargs) -> DataSource:
    return DataSource(name="lite", url=f"sqlite:///{path}", dialect="sqlite", **kwargs)


async def test_sqlite_snapshot(db_path):
    snapshot = await introspect(lite(db_path, exclude=("secrets",)))
    assert snapshot.data_source == "lite" and snapshot.taken_at.tzinfo == UTC
    assert [t.name for t in snapshot.tables] == [
        "active_customers",
        "customers",
        "order_lines",
        "orders",
        "returns",
    ]
    assert {t.schema for t in snapshot.tables} == {"main"}
    by_name = {t.name: t for t in snapshot.tables}
    assert by_name["customers"].columns == [
        ColumnInfo(name="id", type="INTEGER", nullable=False, primary_key=True),
        ColumnInfo(name="name", type="TEXT", nullable=False, primary_key=False),
        ColumnInfo(name="status", type="VARCHAR(10)", nullable=True, primary_key=False),
        ColumnInfo(name="Score", type="", nullable=True, primary_key=False),
    ]
    # `REFERENCES customers` without columns means the parent's primary key.
    assert by_name["orders"].foreign_keys == [
        ForeignKey(columns=["customer_id"], ref_table="customers", ref_columns=["id"])
    ]
    assert [c.name for c in by_name["order_lines"].columns if c.primary_key] == ["order_id", "line_no"]
    assert by_name["returns"].foreign_keys == [
        ForeignKey(
            columns=["order_id", "line_no"], ref_table="order_lines", ref_columns=["order_id", "line_no"]
        )
    ]
    assert [c.name for c in by_name["active_customers"].columns] == ["id", "name"]
    assert snapshot_policy_tables(snapshot) == {
        ("main", "active_customers"),
        ("main", "customers"),
        ("main", "order_lines"),
        ("main", "orders"),
        ("main", "returns"),
    }


async def test_sqlite_sample_values(db_path):
    snapshot = await introspect(lite(db_path, sample_values=True))
    customers = {c.name: c for c in next(t for t in snapshot.tables if t.name == "customers").columns}
    assert customers["status"].sample_values == ["active", "churned", "new"]
    assert customers["name"].sample_values is None  # 60 distinct
    assert customers["id"].sample_values is None


async def test_sqlite_missing_file(tmp_path):
    with pytest.raises(TargetUnavailable):
        await introspect(lite(tmp_path / "missing.db"))


async def test_bundled_demo_database():
    from shared.demo import DEMO_DB_PATH

    source = DataSource(name="default", url=f"sqlite:///{DEMO_DB_PATH}?immutable=1", dialect="sqlite")
    snapshot = await introspect(source)
    assert {"customers", "orders", "products"} <= {t.name for t in snapshot.tables}


def _snapshot() -> SchemaSnapshot:
    customers = TableInfo(
        schema="sales",
        name="customers",
        comment="People\nwho buy",
        columns=[
            ColumnInfo(name="id", type="integer", nullable=False, primary_key=True),
            ColumnInfo(name="name", type="text", nullable=False, primary_key=False, comment="Full name"),
            ColumnInfo(
                name="status",
                type="text",
                nullable=True,
                primary_key=False,
                comment="Lifecycle",
                sample_values=["active", "it's new"],
            ),
        ],
        foreign_keys=[],
    )
    lines = TableInfo(
        schema="sales",
        name="OrderLines",
        comment=None,
        columns=[
            ColumnInfo(name="order_id", type="bigint", nullable=False, primary_key=True),
            ColumnInfo(name="line_no", type="integer", nullable=False, primary_key=True),
            ColumnInfo(name="customer_id", type="integer", nullable=True, primary_key=False),
            ColumnInfo(name="user", type="text", nullable=True, primary_key=False),
        ],
        foreign_keys=[
            ForeignKey(columns=["customer_id"], ref_table="sales.customers", ref_columns=["id"]),
            ForeignKey(columns=["order_id", "line_no"], ref_table="sales.x", ref_columns=["a", "b"]),
        ],
    )
    return SchemaSnapshot(data_source="s", taken_at=datetime.now(UTC), tables=[customers, lines])


def test_render_schema_postgres():
    snapshot = _snapshot()
    assert render_schema(snapshot, snapshot.tables, "postgresql") == (
        "CREATE TABLE sales.customers ( -- People who buy\n"
        "  id integer PRIMARY KEY,\n"
        "  name text NOT NULL, -- Full name\n"
        "  status text -- Lifecycle; e.g. 'active', 'it''s new'\n"
        ");\n"
        "\n"
        'CREATE TABLE sales."OrderLines" (\n'
        "  order_id bigint NOT NULL,\n"
        "  line_no integer NOT NULL,\n"
        "  customer_id integer REFERENCES sales.customers(id),\n"
        '  "user" text,\n'
        "  PRIMARY KEY (order_id, line_no),\n"
        "  FOREIGN KEY (order_id, line_no) REFERENCES sales.x(a, b)\n"
        ");"
    )


async def test_render_schema_sqlite_uses_bare_table_names(db_path):
    snapshot = await introspect(lite(db_path, sample_values=True))
    text = render_schema(snapshot, snapshot.tables, "sqlite")
    assert "CREATE TABLE customers (\n  id INTEGER PRIMARY KEY,\n  name TEXT NOT NULL,\n" in text
    assert "  status VARCHAR(10), -- e.g. 'active', 'churned', 'new'\n  Score\n);" in text
    assert "  customer_id INTEGER NOT NULL REFERENCES customers(id),\n" in text
    assert "  FOREIGN KEY (order_id, line_no) REFERENCES order_lines(order_id, line_no)\n" in text
    assert render_schema(snapshot, [], "sqlite") == ""
