"""The SQLite executor (with the guard's real `harden_connection`): values and type names, caps,
timeout, cancellation, errors, URL forms."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import msgspec
import pytest

from shared.pipeline_errors import OperationTimeout, SqlExecutionError, SqlRejected, TargetUnavailable
from shared.targets.config import DataSource
from shared.targets.introspect import sqlite_uri
from worker.pipeline.execute import ExecutionLimits, SqliteTarget

LIMITS = ExecutionLimits(statement_timeout_s=5, row_cap=1000, max_bytes=1_000_000)
ALLOWED = frozenset({"things", "numbers"})


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "target.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE things (id INTEGER PRIMARY KEY, label TEXT, price REAL, data BLOB, big INTEGER);
        INSERT INTO things VALUES (1, 'one', 1.5, x'00ff', 9223372036854775807);
        INSERT INTO things VALUES (2, NULL, 1e999, NULL, -1);
        CREATE TABLE numbers (n INTEGER, pad TEXT);
        CREATE TABLE secrets (s TEXT);
        INSERT INTO secrets VALUES ('hunter2');
        """
    )
    conn.executemany("INSERT INTO numbers VALUES (?, ?)", [(i, "x" * 90) for i in range(1, 501)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
async def target(db_path):
    source = DataSource(name="lite", url=f"sqlite:///{db_path}", dialect="sqlite")
    target = await SqliteTarget.open(source, ALLOWED)
    yield target
    await target.close()


async def test_values_and_value_derived_type_names(target):
    result = await target.run(
        "SELECT id, label, price, data, big, NULL AS nada FROM things ORDER BY id", limits=LIMITS
    )
    assert [(c.name, c.type) for c in result.columns] == [
        ("id", "integer"),
        ("label", "text"),
        ("price", "real"),
        ("data", "blob"),
        ("big", "integer"),
        ("nada", "null"),
    ]
    assert result.rows == [
        [1, "one", 1.5, "AP8=", 9223372036854775807, None],
        [2, None, "Infinity", None, -1, None],
    ]
    assert result.truncated is False
    assert result.byte_size == len(msgspec.json.encode(result.rows))


async def test_row_cap(target):
    limits = ExecutionLimits(statement_timeout_s=5, row_cap=100, max_bytes=1_000_000)
    result = await target.run("SELECT n FROM numbers ORDER BY n", limits=limits)
    assert result.truncated is True
    assert [r[0] for r in result.rows] == list(range(1, 101))
    exact = ExecutionLimits(statement_timeout_s=5, row_cap=500, max_bytes=1_000_000)
    result = await target.run("SELECT n FROM numbers", limits=exact)
    assert len(result.rows) == 500 and result.truncated is False


async def test_byte_cap(target):
    limits = ExecutionLimits(statement_timeout_s=5, row_cap=1000, max_bytes=5_000)
    result = await target.run("SELECT n, pad FROM numbers ORDER BY n", limits=limits)
    assert result.truncated is True
    assert result.byte_size == len(msgspec.json.encode(result.rows)) <= 5_000
    assert result.byte_size + len(msgspec.json.encode([1, "x" * 90])) + 1 > 5_000


RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"


async def test_statement_timeout(target):
    limits = ExecutionLimits(statement_timeout_s=0.3, row_cap=10, max_bytes=10_000)
    started = time.monotonic()
    with pytest.raises(OperationTimeout):
        await target.run(RUNAWAY, limits=limits)
    assert time.monotonic() - started < 1.5
    assert (await target.run("SELECT count(*) FROM things", limits=LIMITS)).rows == [[2]]


async def test_cancellation_stops_the_statement(target):
    task = asyncio.create_task(
        target.run(RUNAWAY, limits=ExecutionLimits(statement_timeout_s=60, row_cap=1, max_bytes=100))
    )
    for _ in range(100):
        if target.running:
            break
        await asyncio.sleep(0.01)
    assert target.running == 1
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1
    assert target.running == 0


async def test_sql_errors(target):
    with pytest.raises(SqlExecutionError, match="no such column: nmae"):
        await target.run("SELECT nmae FROM things", limits=LIMITS)
    with pytest.raises(SqlExecutionError, match="one statement"):
        await target.run("SELECT 1; SELECT 2", limits=LIMITS)


async def test_tables_outside_the_allowed_set_are_refused(target):
    with pytest.raises((SqlRejected, SqlExecutionError)) as caught:
        await target.run("SELECT s FROM secrets", limits=LIMITS)
    assert "hunter2" not in caught.value.detail


async def test_writes_fail_and_change_nothing(target, db_path):
    with pytest.raises((SqlRejected, SqlExecutionError)):
        await target.run("DELETE FROM things", limits=LIMITS)
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM things").fetchone() == (2,)
    conn.close()


async def test_missing_file_is_unavailable(tmp_path):
    source = DataSource(name="gone", url=f"sqlite:///{tmp_path}/missing.db", dialect="sqlite")
    with pytest.raises(TargetUnavailable):
        await SqliteTarget.open(source, frozenset())
    assert not (tmp_path / "missing.db").exists()  # read-only open never creates a file


async def test_bundled_demo_database_opens_immutable():
    from shared.demo import DEMO_DB_PATH

    source = DataSource(name="default", url=f"sqlite:///{DEMO_DB_PATH}?immutable=1", dialect="sqlite")
    target = await SqliteTarget.open(source, frozenset({"customers"}))
    result = await target.run("SELECT count(*) AS n FROM customers", limits=LIMITS)
    assert result.rows[0][0] > 0 and result.columns[0].name == "n"


def test_sqlite_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sqlite_uri("sqlite:///var/x.db") == f"file:{tmp_path}/var/x.db?mode=ro"
    assert sqlite_uri("sqlite:////abs/dir/x.db") == "file:/abs/dir/x.db?mode=ro"
    assert sqlite_uri("sqlite:////abs/x.db?immutable=1") == "file:/abs/x.db?mode=ro&immutable=1"
    assert sqlite_uri("sqlite:////abs/x.db", immutable=True) == "file:/abs/x.db?mode=ro&immutable=1"
    assert sqlite_uri("sqlite:////a b/x#?.db") == "file:/a%20b/x%23?mode=ro"
    with pytest.raises(ValueError):
        sqlite_uri("postgresql://h/d")
    assert os.getcwd() == str(tmp_path)
