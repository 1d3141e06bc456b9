"""The SQLite guard against a real temporary database file opened `mode=ro`."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpus_sqlite import ALLOWED_TABLES, ATTACKS, EXECUTION_ERROR, SAFE, SCHEMA

from shared.pipeline_errors import SqlExecutionError, SqlRejected
from shared.sqlguard import check_sqlite, harden_connection, make_authorizer


def _id(sql: str) -> str:
    return sql[:60].encode("unicode_escape").decode()


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlguard") / "target.db"
    with sqlite3.connect(path) as writer:
        writer.executescript(SCHEMA)
    writer.close()
    return path


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


@pytest.fixture(scope="module")
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = _open_read_only(db_path)
    harden_connection(connection, ALLOWED_TABLES)
    yield connection
    connection.close()


def test_corpus_is_big_enough() -> None:
    assert len(ATTACKS) >= 50
    assert len(SAFE) >= 20


@pytest.mark.parametrize(("sql", "rule"), ATTACKS, ids=[_id(sql) for sql, _ in ATTACKS])
def test_attack_is_rejected(conn: sqlite3.Connection, sql: str, rule: str) -> None:
    expected = SqlExecutionError if rule == EXECUTION_ERROR else SqlRejected
    with pytest.raises(expected) as caught:
        check_sqlite(conn, sql, ALLOWED_TABLES)
    if isinstance(caught.value, SqlRejected):
        assert caught.value.rule == rule, caught.value.detail


@pytest.mark.parametrize("sql", SAFE, ids=[_id(sql) for sql in SAFE])
def test_safe_query_passes_and_returns_rows(conn: sqlite3.Connection, sql: str) -> None:
    statement = check_sqlite(conn, sql, ALLOWED_TABLES)
    assert not statement.rstrip().endswith(";")
    assert conn.execute(statement).fetchall()


def _run(connection: sqlite3.Connection, sql: str) -> bool:
    """True when the statement ran to completion (the attack got through)."""
    connection.set_progress_handler(lambda: 1, 100_000)  # stands in for the executor's timeout
    try:
        connection.execute(sql).fetchall()
    except (sqlite3.Error, ValueError):
        return False
    finally:
        connection.set_progress_handler(None, 0)
    return True


# What a hardened connection still runs when check_sqlite is skipped: nothing harmful, and
# check_sqlite refuses each of them statically.
_RUN_WITHOUT_CHECK = {
    "select 1 " + " " * 100_000,  # only too long
    "reindex",  # consults no authorizer; a no-op on a read-only file
    "explain query plan select 1",
}


def test_hardened_connection_blocks_every_attack_even_unchecked(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with check_sqlite skipped, harden_connection alone stops the attacks,
    while `mode=ro` + `query_only` let many through. Files named by attacks land in tmp_path."""
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    attacks = [sql for sql, rule in ATTACKS if rule != "empty"]

    # The baseline really allocates what it is asked for: spare the gigabyte blobs.
    baseline_dir, hardened_dir = tmp_path / "baseline", tmp_path / "hardened"
    baseline_dir.mkdir()
    hardened_dir.mkdir()
    monkeypatch.chdir(baseline_dir)
    baseline = _open_read_only(db_path)
    baseline.execute("PRAGMA query_only = ON")
    through_baseline = [sql for sql in attacks if "blob(1000000000)" not in sql and _run(baseline, sql)]
    baseline.close()

    monkeypatch.chdir(hardened_dir)
    hardened = _open_read_only(db_path)
    harden_connection(hardened, ALLOWED_TABLES)
    through_hardened = {sql for sql in attacks if _run(hardened, sql)}
    hardened.close()

    print(f"\nmode=ro + query_only alone: {len(through_baseline)} of {len(attacks)} attacks ran:")
    print("\n".join(f"  {sql[:100]!r}" for sql in through_baseline))
    print("files they created:", sorted(p.name for p in baseline_dir.iterdir()))
    assert len(through_baseline) > len(_RUN_WITHOUT_CHECK), "the authorizer should be load-bearing"
    assert through_hardened <= _RUN_WITHOUT_CHECK
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before
    assert not any(hardened_dir.iterdir()), "an attack created a file"


def test_check_compiles_without_running(conn: sqlite3.Connection) -> None:
    # json() only fails when executed: EXPLAIN compiles the statement, it does not run it.
    statement = check_sqlite(conn, "select json('not json')", ALLOWED_TABLES)
    with pytest.raises(sqlite3.OperationalError, match="malformed JSON"):
        conn.execute(statement).fetchall()


def test_compile_errors_are_execution_errors(conn: sqlite3.Connection) -> None:
    with pytest.raises(SqlExecutionError, match="no such column"):
        check_sqlite(conn, "select nope from orders", ALLOWED_TABLES)
    with pytest.raises(SqlExecutionError, match="syntax error"):
        check_sqlite(conn, "select from where", ALLOWED_TABLES)


def test_returns_the_statement_without_surrounding_comments_or_semicolon(conn: sqlite3.Connection) -> None:
    sql = "/* lead */ select ';' -- tail\n ; -- after\n"
    assert check_sqlite(conn, sql, ALLOWED_TABLES) == "select ';'"


def test_fresh_connection_compiles_without_reading_sqlite_master(db_path: Path) -> None:
    # The authorizer denies sqlite_master; loading the schema is internal and never asks.
    fresh = _open_read_only(db_path)
    harden_connection(fresh, ALLOWED_TABLES)
    try:
        statement = check_sqlite(fresh, "select count(*) from orders", ALLOWED_TABLES)
        assert fresh.execute(statement).fetchone() == (4,)
    finally:
        fresh.close()


@pytest.mark.parametrize(
    "sql",
    [
        "select printf('%.*c', 20000000, 'x')",
        "select replace(printf('%.*c', 9000000, 'x'), 'x', 'xx')",
        "select group_concat(printf('%.*c', 1000000, 'x')) from (select 1 union all select 2 union all "
        "select 3 union all select 4 union all select 5 union all select 6 union all select 7 union all "
        "select 8 union all select 9 union all select 10 union all select 11 union all select 12 union all "
        "select 13 union all select 14 union all select 15 union all select 16 union all select 17)",
        "select 'a' like printf('%.*c', 2000, '%')",
    ],
)
def test_size_limits_stop_bombs_at_run_time(conn: sqlite3.Connection, sql: str) -> None:
    """Pure functions compile, but no value can outgrow SQLITE_LIMIT_LENGTH (SQLite answers
    "string or blob too big", or NULL from printf) and LIKE patterns are capped."""
    statement = check_sqlite(conn, sql, ALLOWED_TABLES)
    try:
        (value,) = conn.execute(statement).fetchone()
    except sqlite3.Error as exc:
        assert "too big" in str(exc) or "pattern too complex" in str(exc)
    else:
        assert value is None


def test_pragmas_are_denied_once_hardened(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("PRAGMA query_only = OFF")
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("ATTACH ':memory:' AS m")


def test_authorizer_decisions() -> None:
    authorize = make_authorizer(frozenset({"orders", "élan", "sqlite_sequence"}))
    ok, deny = sqlite3.SQLITE_OK, sqlite3.SQLITE_DENY
    assert authorize(sqlite3.SQLITE_SELECT, None, None, None, None) == ok
    assert authorize(sqlite3.SQLITE_RECURSIVE, None, None, None, None) == ok
    assert authorize(sqlite3.SQLITE_READ, "ORDERS", "id", "main", None) == ok
    assert authorize(sqlite3.SQLITE_READ, "orders", "", None, None) == ok
    assert authorize(sqlite3.SQLITE_READ, "élan", "x", "main", None) == ok
    # SQLite folds ASCII only: "ÉLAN" is another table.
    assert authorize(sqlite3.SQLITE_READ, "ÉLAN", "x", "main", None) == deny
    # A CTE named like an allowed table does not make its reads allowed.
    assert authorize(sqlite3.SQLITE_READ, "secrets", "token", "main", "orders") == deny
    # Engine tables stay denied even if a policy lists them.
    assert authorize(sqlite3.SQLITE_READ, "sqlite_sequence", "seq", "main", None) == deny
    assert authorize(sqlite3.SQLITE_FUNCTION, None, "upper", None, None) == ok
    assert authorize(sqlite3.SQLITE_FUNCTION, None, "load_extension", None, None) == deny
    for action in (
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_PRAGMA,
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_TRANSACTION,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
    ):
        assert authorize(action, "orders", None, "main", None) == deny
