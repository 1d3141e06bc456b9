"""The bundled demo database and knowledge base: shippable, consistent, reproducible, verified."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from shared.demo import DEMO_DB_PATH, DEMO_DB_URI, KNOWLEDGE_PATH, DemoExample, load_examples
from shared.demo.build import build

TABLES = {"categories", "products", "customers", "employees", "orders", "order_items", "payments"}
EXAMPLES = load_examples()


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(path.as_posix())}?mode=ro&immutable=1", uri=True)


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(DEMO_DB_URI, uri=True)
    yield conn
    conn.close()


def _dump(conn: sqlite3.Connection) -> dict[str, object]:
    """Schema, header settings and every row, in a comparable form."""
    dump: dict[str, object] = {
        "schema": conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
        ).fetchall(),
        "user_version": conn.execute("PRAGMA user_version").fetchone(),
    }
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        dump[table] = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
    return dump


def test_packaged_files_exist_and_are_small() -> None:
    assert DEMO_DB_PATH.is_file()
    assert KNOWLEDGE_PATH.is_file()
    assert DEMO_DB_PATH.stat().st_size < 2 * 1024 * 1024


def test_rollback_journal_mode(db: sqlite3.Connection) -> None:
    # Header bytes 18 and 19 (file format write/read version) are 1 for rollback journal, 2 for WAL.
    header = DEMO_DB_PATH.read_bytes()[:100]
    assert header[:16] == b"SQLite format 3\x00"
    assert (header[18], header[19]) == (1, 1)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_opened_read_only_and_leaves_no_side_files(db: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("DELETE FROM payments")
    for suffix in ("-journal", "-wal", "-shm"):
        assert not DEMO_DB_PATH.with_name(DEMO_DB_PATH.name + suffix).exists()


def test_integrity_and_foreign_keys(db: sqlite3.Connection) -> None:
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_schema_tables_sizes_and_comments(db: sqlite3.Connection) -> None:
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    assert {name for name, _ in rows} == TABLES
    for name, sql in rows:
        assert "--" in sql.splitlines()[0], f"{name} has no table comment"
    counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert 300 <= counts["customers"] <= 600
    assert 40 <= counts["products"] <= 60
    assert 1500 <= counts["orders"] <= 2500
    assert 4000 <= counts["order_items"] <= 6000


def test_payments_match_order_totals(db: sqlite3.Connection) -> None:
    mismatched = db.execute(
        """
        SELECT o.id
        FROM orders AS o
        JOIN order_items AS oi ON oi.order_id = o.id
        WHERE o.status NOT IN ('pending', 'cancelled')
        GROUP BY o.id
        HAVING ROUND(SUM(oi.quantity * oi.unit_price * (1 - oi.discount)), 2)
            IS NOT (SELECT ROUND(SUM(p.amount), 2) FROM payments AS p WHERE p.order_id = o.id)
        """
    ).fetchall()
    assert mismatched == []
    unpaid_but_paid = db.execute(
        "SELECT COUNT(*) FROM payments JOIN orders ON orders.id = payments.order_id"
        " WHERE orders.status IN ('pending', 'cancelled')"
    ).fetchone()
    assert unpaid_but_paid == (0,)


def test_knowledge_base_shape() -> None:
    assert 20 <= len(EXAMPLES) <= 25
    questions = [e.question.strip().casefold() for e in EXAMPLES]
    assert len(set(questions)) == len(questions), "duplicate questions"
    for example in EXAMPLES:
        assert example.question.strip() and example.sql.strip()
        assert not example.sql.rstrip().endswith(";")
        assert example.sql.lstrip().upper().startswith(("SELECT", "WITH"))


_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}


def _read_only_authorizer(action: int, arg1: str | None, *_: object) -> int:
    if action == sqlite3.SQLITE_READ and arg1 not in TABLES:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.question for e in EXAMPLES])
def test_knowledge_sql_runs_and_returns_rows(db: sqlite3.Connection, example: DemoExample) -> None:
    db.set_authorizer(_read_only_authorizer)
    try:
        # Python's sqlite3 refuses a string holding more than one statement.
        rows = db.execute(example.sql).fetchall()
    finally:
        db.set_authorizer(None)
    assert rows, example.question


def test_builder_is_deterministic(tmp_path: Path, db: sqlite3.Connection) -> None:
    target = tmp_path / "demo.db"
    build(target)
    rebuilt = _connect_ro(target)
    try:
        assert rebuilt.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert _dump(rebuilt) == _dump(db)
    finally:
        rebuilt.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.db"]
