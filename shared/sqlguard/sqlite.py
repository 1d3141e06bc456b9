"""The SQLite guard: one statement, compiled under an authorizer that permits reads and nothing else.

SQLite has no parser we can call from Python, so the engine itself is the parser: the
statement is compiled (never run) as `EXPLAIN <sql>`, and every action the compiler needs —
each table read, each function, each write — is put to the authorizer, which denies anything
not on its allowlists. Opening the file `mode=ro` and `PRAGMA query_only` alone are not
enough: they let through reads of other tables and of `sqlite_master`, `ATTACH`, extension
loading, `fts3_tokenizer`, `VACUUM INTO` and size bombs. A small lexer in front only counts
statements and checks the first keyword, because `VACUUM` never consults the authorizer.

Reads are allowed per table, never per enclosing view: SQLite reports the "responsible view"
of a read, but it reports a CTE name there too, so `WITH orders AS (SELECT * FROM secrets)`
would otherwise borrow the name of an allowed table. A view is therefore readable only when
every table it reads is allowed as well.
"""

from __future__ import annotations

import sqlite3
import string
from collections.abc import Callable
from typing import NamedTuple

from shared.pipeline_errors import SqlExecutionError, SqlRejected

# Pure built-ins (plus the JSON and math extensions compiled into stock builds). `like`, `glob`
# and `->`/`->>` are listed because SQLite authorises those operators as function calls.
_FUNCTION_NAMES = """
    abs avg ceil ceiling char coalesce count cume_dist current_date current_time
    current_timestamp date datetime degrees dense_rank exp first_value floor format glob
    group_concat string_agg hex unhex ifnull iif instr julianday lag last_value lead length
    like likelihood likely unlikely ln log log10 log2 lower ltrim max min mod nth_value ntile
    nullif octet_length percent_rank pi pow power printf quote radians random rank replace round
    row_number rtrim sign sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh sqrt
    strftime substr substring sum time timediff total trim trunc typeof unicode unixepoch upper
    concat concat_ws -> ->>
    json json_array json_array_length json_extract json_group_array json_group_object
    json_insert json_object json_patch json_quote json_remove json_replace json_set json_type
    json_valid json_error_position json_pretty
"""
ALLOWED_FUNCTIONS: frozenset[str] = frozenset(_FUNCTION_NAMES.split())

MAX_SQL_LENGTH = 100_000

# Statements must start with one of these; everything else (VACUUM, PRAGMA, ATTACH, REINDEX...)
# is refused before SQLite sees it, since not all of them reach the authorizer.
_SELECT_KEYWORDS = frozenset({"select", "with", "values"})

# What the engine may spend on one statement (sqlite3.Connection.setlimit). Strings and blobs
# above LENGTH fail with "string or blob too big" instead of filling memory (printf/replace
# bombs); no ATTACHed databases at all; no bound parameters, which generated SQL never needs.
LIMITS: dict[int, int] = {
    sqlite3.SQLITE_LIMIT_LENGTH: 16 * 1024 * 1024,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: MAX_SQL_LENGTH + 100,  # room for the EXPLAIN prefix
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 200,
    sqlite3.SQLITE_LIMIT_COMPOUND_SELECT: 100,
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 1_000,
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
    sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER: 0,
    sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH: 1,
    sqlite3.SQLITE_LIMIT_WORKER_THREADS: 0,
}

Authorizer = Callable[[int, str | None, str | None, str | None, str | None], int]

# SQLite folds identifiers for ASCII letters only; str.lower() would also fold "É" to "é"
# and make two distinct tables look like one.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _fold(name: str) -> str:
    return name.translate(_ASCII_LOWER)


class Denial(NamedTuple):
    action: int
    arg1: str | None
    arg2: str | None


class SqliteAuthorizer:
    """The callable given to Connection.set_authorizer; remembers the first thing it denied so
    the rejection can name it (SQLite itself only says "not authorized")."""

    def __init__(self, allowed_tables: frozenset[str]) -> None:
        self._tables = frozenset(_fold(name) for name in allowed_tables)
        self.denied: Denial | None = None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db_name: str | None, source: str | None
    ) -> int:
        if self._allows(action, arg1, arg2):
            return sqlite3.SQLITE_OK
        if self.denied is None:
            self.denied = Denial(action, arg1, arg2)
        return sqlite3.SQLITE_DENY

    def _allows(self, action: int, arg1: str | None, arg2: str | None) -> bool:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return True
        if action == sqlite3.SQLITE_READ:
            # arg1 is the table; db_name is None for some reads (count(*)), so it is no guide.
            # sqlite_* tables are engine internals (schema text of excluded tables, ...).
            table = _fold(arg1 or "")
            return table in self._tables and not table.startswith("sqlite_")
        if action == sqlite3.SQLITE_FUNCTION:
            return _fold(arg2 or "") in ALLOWED_FUNCTIONS
        return False


def make_authorizer(allowed_tables: frozenset[str]) -> Authorizer:
    """An authorizer allowing SELECT, recursive CTEs, reads of `allowed_tables` (compared
    case-insensitively, as SQLite does) and calls of ALLOWED_FUNCTIONS; everything else is
    SQLITE_DENY. sqlite_master is never needed to compile a query and is denied."""
    return SqliteAuthorizer(allowed_tables)


def harden_connection(conn: sqlite3.Connection, allowed_tables: frozenset[str]) -> None:
    """Prepare a `mode=ro` target connection for generated SQL. Call once, before anything runs.

    Timeouts are not set here: the executor must bound run time itself (a progress handler or
    `interrupt()`), since recursive CTEs and cross joins can run forever on few bytes of SQL.
    """
    # PRAGMAs first: once the authorizer is installed, it denies them too.
    conn.execute("PRAGMA query_only = ON")
    # Functions called from the schema (views) must be marked innocuous to run.
    conn.execute("PRAGMA trusted_schema = OFF")
    if hasattr(conn, "enable_load_extension"):  # absent when Python is built without it
        conn.enable_load_extension(False)
    for category, limit in LIMITS.items():
        conn.setlimit(category, limit)
    conn.set_authorizer(make_authorizer(allowed_tables))


def check_sqlite(conn: sqlite3.Connection, sql: str, allowed_tables: frozenset[str]) -> str:
    """Return the single statement (comments around it and the trailing semicolon removed) or
    raise SqlRejected / SqlExecutionError. `conn` must be open read-only on the target; this
    (re)installs the authorizer on it, so it stays installed for the execution that follows."""
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlRejected(
            "too_long", f"the statement is {len(sql)} characters long; the limit is {MAX_SQL_LENGTH}"
        )
    if "\x00" in sql:
        raise SqlRejected("parse_error", "the statement contains a NUL character")
    statement = _single_statement(sql)
    _check_first_keyword(statement)
    _compile(conn, statement, allowed_tables)
    return statement


def _compile(conn: sqlite3.Connection, statement: str, allowed_tables: frozenset[str]) -> None:
    """Prepare the statement under the authorizer without running it. EXPLAIN compiles the
    inner statement in full (the authorizer is consulted at prepare time) and stepping it
    only lists the bytecode."""
    authorizer = SqliteAuthorizer(allowed_tables)
    conn.set_authorizer(authorizer)
    try:
        conn.execute(f"EXPLAIN {statement}").fetchall()
    except sqlite3.DatabaseError as exc:
        message = str(exc)
        # A denial aborts compilation, so it is the cause whatever SQLite's wording ("not
        # authorized", "access to t.c is prohibited", "vtable constructor failed", ...).
        if authorizer.denied is not None:
            raise _rejection(authorizer.denied) from None
        if "one statement at a time" in message:
            raise SqlRejected("single_statement", "exactly one statement is allowed") from None
        raise SqlExecutionError(message) from None


_ACTION_NAMES = {
    sqlite3.SQLITE_INSERT: "INSERT into",
    sqlite3.SQLITE_UPDATE: "UPDATE of",
    sqlite3.SQLITE_DELETE: "DELETE from",
    sqlite3.SQLITE_CREATE_TABLE: "CREATE TABLE",
    sqlite3.SQLITE_CREATE_TEMP_TABLE: "CREATE TEMP TABLE",
    sqlite3.SQLITE_CREATE_VIEW: "CREATE VIEW",
    sqlite3.SQLITE_CREATE_TEMP_VIEW: "CREATE TEMP VIEW",
    sqlite3.SQLITE_CREATE_INDEX: "CREATE INDEX",
    sqlite3.SQLITE_CREATE_TRIGGER: "CREATE TRIGGER",
    sqlite3.SQLITE_DROP_TABLE: "DROP TABLE",
    sqlite3.SQLITE_DROP_VIEW: "DROP VIEW",
    sqlite3.SQLITE_ALTER_TABLE: "ALTER TABLE",
    sqlite3.SQLITE_TRANSACTION: "transaction control",
    sqlite3.SQLITE_SAVEPOINT: "SAVEPOINT",
    sqlite3.SQLITE_ANALYZE: "ANALYZE",
    sqlite3.SQLITE_REINDEX: "REINDEX",
    sqlite3.SQLITE_CREATE_VTABLE: "CREATE VIRTUAL TABLE",
    sqlite3.SQLITE_DROP_VTABLE: "DROP VIRTUAL TABLE",
}


def _rejection(denied: Denial) -> SqlRejected:
    action, arg1, arg2 = denied
    if action == sqlite3.SQLITE_READ:
        return SqlRejected("relation_not_allowed", f"table {arg1} is not one of this data source's tables")
    if action == sqlite3.SQLITE_FUNCTION:
        return SqlRejected("function_not_allowed", f"function {arg2} is not allowed")
    if action == sqlite3.SQLITE_PRAGMA:
        return SqlRejected("pragma_not_allowed", f"PRAGMA {arg1} is not allowed")
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return SqlRejected("attach_not_allowed", "ATTACH and DETACH are not allowed")
    if action == sqlite3.SQLITE_UPDATE and _fold(arg1 or "") in ("sqlite_master", "sqlite_temp_master"):
        # What SQLite asks for when a query first touches a table-valued function: it declares
        # the virtual table's schema.
        return SqlRejected(
            "function_not_allowed",
            "table-valued functions and virtual tables (json_each, json_tree, pragma_*, dbstat, ...) are "
            "not allowed; use json_extract and the ->> operator instead",
        )
    what = _ACTION_NAMES.get(action, f"action {action}")
    target = f" {arg1}" if arg1 and action in _ACTION_NAMES else ""
    return SqlRejected("not_select", f"{what}{target} is not allowed; only SELECT queries may run")


# --- statement splitting ---------------------------------------------------------------------


def _single_statement(sql: str) -> str:
    spans = _statement_spans(sql)
    if not spans:
        raise SqlRejected("empty", "there is no SQL statement, only whitespace, comments or semicolons")
    if len(spans) > 1:
        raise SqlRejected("single_statement", f"exactly one statement is allowed, found {len(spans)}")
    start, end = spans[0]
    return sql[start:end]


def _statement_spans(sql: str) -> list[tuple[int, int]]:
    """(start, end) of the significant text of each `;`-separated statement, following SQLite's
    tokenizer for what hides a semicolon: '…' strings, "…", `…` and […] identifiers, -- and
    /* */ comments (not nested; an unterminated one runs to the end, as in SQLite)."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    end = 0
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char == ";":
            if start is not None:
                spans.append((start, end))
            start = None
            i += 1
        elif char.isspace():
            i += 1
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
        else:
            token_end = _skip_token(sql, i)
            if start is None:
                start = i
            end = i = token_end
    if start is not None:
        spans.append((start, end))
    return spans


_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _skip_token(sql: str, i: int) -> int:
    """End of the quoted token starting at i, or i + 1 for any other character. Doubling the
    closing quote escapes it; brackets have no escape."""
    closer = _CLOSERS.get(sql[i])
    if closer is None:
        return i + 1
    j = i + 1
    while True:
        close = sql.find(closer, j)
        if close < 0:
            return len(sql)  # unterminated: SQLite's compile error will say so
        if closer != "]" and sql.startswith(closer * 2, close):
            j = close + 2
            continue
        return close + 1


def _check_first_keyword(statement: str) -> None:
    word = ""
    for char in statement:
        if not (char.isascii() and (char.isalpha() or char == "_")):
            break
        word += char
    if _fold(word) not in _SELECT_KEYWORDS:
        found = word.upper() or statement[:1]
        raise SqlRejected("not_select", f"only a SELECT statement is allowed, found {found}")
