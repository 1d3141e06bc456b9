"""Schema snapshots of a data source: what the LLM is shown and what the guard allows.

PostgreSQL: tables, partitioned tables, views, materialized views and foreign tables of the data
source's schemas (`schemas`, or every non-system schema the role has USAGE on), that the role
may SELECT (columns it may not read are left out), minus `exclude`. Three catalogue queries in
one short READ ONLY transaction — tables, columns, constraints — whatever the number of tables.
Foreign keys pointing outside the snapshot (excluded or other schemas) are dropped. Partitions are
hidden behind their parent.

`sample_values` (opt-in): for text-like (string category or enum) columns of tables and
materialized views, the distinct values among the first 1,000 rows; a column with at most 20 of
them keeps up to 5 (sorted, each cut to 100 characters). Views and foreign tables are not sampled
(their cost is unbounded). Sampling runs in its own READ ONLY transactions with a statement
timeout and is skipped, not fatal, when it fails.

SQLite: sqlite_master + `pragma table_info` / `foreign_key_list`, schema "main".
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

import asyncpg
import msgspec
from pglast.keywords import RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

from shared.pipeline_errors import TargetUnavailable
from shared.targets.config import DataSource, Dialect

__all__ = [
    "ColumnInfo",
    "ForeignKey",
    "SchemaSnapshot",
    "TableInfo",
    "introspect",
    "quote_ident",
    "render_schema",
    "snapshot_policy_tables",
    "sqlite_uri",
]

log = logging.getLogger(__name__)

SAMPLE_SCAN_ROWS = 1000
SAMPLE_MAX_DISTINCT = 20
SAMPLE_KEEP = 5
SAMPLE_MAX_CHARS = 100
_SAMPLE_COLUMNS_PER_QUERY = 50
_CATALOG_TIMEOUT_MS = 30_000
_SAMPLE_TIMEOUT_MS = 5_000
_CONNECT_TIMEOUT_S = 10
_CONNECT_TRIES = 3


class ColumnInfo(msgspec.Struct):
    name: str
    type: str  # PostgreSQL: format_type() ("character varying(20)"); SQLite: the declared type
    nullable: bool
    primary_key: bool
    comment: str | None = None
    # Only with `sample_values = true`; goes to the LLM, not to API clients.
    sample_values: list[str] | None = None


class ForeignKey(msgspec.Struct):
    columns: list[str]
    ref_table: str  # "schema.table" on PostgreSQL, "table" on SQLite (unquoted)
    ref_columns: list[str]


class TableInfo(msgspec.Struct):
    schema: str
    name: str
    comment: str | None
    columns: list[ColumnInfo]
    foreign_keys: list[ForeignKey]


class SchemaSnapshot(msgspec.Struct):
    data_source: str
    taken_at: datetime  # UTC
    tables: list[TableInfo]


# --- helpers shared with the executor --------------------------------------------------------


def quote_ident(name: str) -> str:
    """An always-quoted SQL identifier (PostgreSQL and SQLite)."""
    return '"' + name.replace('"', '""') + '"'


def sqlite_uri(url: str, *, immutable: bool | None = None) -> str:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` (SPEC) as a read-only SQLite URI.

    A relative path is taken from the current directory; like `shared.settings.sqlite_path`, the
    path is used as written (no percent-decoding). `immutable` None means: honour
    `?immutable=1` in the URL. The result always carries `mode=ro`."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError("a SQLite data source URL looks like sqlite:///relative/path or sqlite:////abs/path")
    path, _, query = url[len(prefix) :].partition("?")
    if not path:
        raise ValueError("the SQLite data source URL has no file path")
    if immutable is None:
        flag = parse_qs(query).get("immutable", ["0"])[-1].lower()
        immutable = flag in ("1", "true", "yes", "on")
    params = "mode=ro" + ("&immutable=1" if immutable else "")
    return f"file:{quote(os.path.abspath(path))}?{params}"


_SIMPLE_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
_KEYWORDS = frozenset(RESERVED_KEYWORDS) | frozenset(TYPE_FUNC_NAME_KEYWORDS)


def _display_ident(name: str, dialect: Dialect) -> str:
    """An identifier as the LLM should write it: bare when that is safe, else double-quoted."""
    candidate = name.lower() if dialect == "sqlite" else name
    if _SIMPLE_IDENT.fullmatch(candidate) and candidate not in _KEYWORDS:
        return name
    return quote_ident(name)


def _excluded(schema: str, name: str, exclude: Iterable[str], dialect: Dialect) -> bool:
    """`exclude` entries: "schema.table", "schema.*" or a bare "table" (any schema); case-blind,
    so an entry can only ever hide more, never less."""
    schema_l, name_l = schema.lower(), name.lower()
    for entry in exclude:
        entry_l = entry.strip().lower()
        if "." in entry_l:
            entry_schema, _, entry_table = entry_l.rpartition(".")
            if dialect == "sqlite" and entry_schema == "main" and entry_table == name_l:
                return True
            if entry_schema == schema_l and entry_table in ("*", name_l):
                return True
        elif entry_l == name_l:
            return True
    return False


def snapshot_policy_tables(snapshot: SchemaSnapshot) -> frozenset[tuple[str, str]]:
    """Lower-cased (schema, table) pairs the guard may let a statement read."""
    return frozenset((t.schema.lower(), t.name.lower()) for t in snapshot.tables)


# --- entry point -----------------------------------------------------------------------------


async def introspect(source: DataSource) -> SchemaSnapshot:
    """A fresh snapshot, over a short-lived connection of its own."""
    if source.dialect == "postgresql":
        tables = await _introspect_postgres(source)
    else:
        tables = await asyncio.to_thread(_introspect_sqlite, source)
    return SchemaSnapshot(data_source=source.name, taken_at=datetime.now(UTC), tables=tables)


# --- PostgreSQL ------------------------------------------------------------------------------

_PG_TABLES = """
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND CASE WHEN $1::text[] IS NULL
           THEN n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
           ELSE n.nspname = ANY($1::text[]) END
  AND has_schema_privilege(n.oid, 'USAGE')
  AND (has_table_privilege(c.oid, 'SELECT') OR has_any_column_privilege(c.oid, 'SELECT'))
ORDER BY n.nspname, c.relname
"""

_PG_COLUMNS = """
SELECT a.attrelid AS table_oid, a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type,
       NOT a.attnotnull AS nullable,
       col_description(a.attrelid, a.attnum) AS comment,
       coalesce(base.typcategory, t.typcategory) IN ('S', 'E') AS textual
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type base ON t.typtype = 'd' AND base.oid = t.typbasetype
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  AND has_column_privilege(a.attrelid, a.attnum, 'SELECT')
ORDER BY a.attrelid, a.attnum
"""

# Primary and foreign keys, columns in constraint order. conparentid = 0 skips the copies
# PostgreSQL adds for each partition of a referenced partitioned table.
_PG_CONSTRAINTS = """
SELECT con.conrelid AS table_oid, con.contype::text AS kind, con.conname AS name,
       array_agg(a.attname ORDER BY k.ord) AS columns,
       rn.nspname AS ref_schema, rc.relname AS ref_table,
       array_agg(fa.attname ORDER BY k.ord) AS ref_columns
FROM pg_catalog.pg_constraint con
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, refnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
LEFT JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.refnum
LEFT JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = ANY($1::oid[]) AND con.contype IN ('p', 'f') AND con.conparentid = 0
GROUP BY con.oid, con.conrelid, con.contype, con.conname, rn.nspname, rc.relname
ORDER BY con.conrelid, con.contype, con.conname
"""


async def _pg_connect(source: DataSource) -> Any:
    last: BaseException | None = None
    for attempt in range(_CONNECT_TRIES):
        if attempt:
            await asyncio.sleep(0.2 * attempt)
        try:
            return await asyncpg.connect(
                source.url,
                timeout=_CONNECT_TIMEOUT_S,
                statement_cache_size=0,
                server_settings={"application_name": "sqlagent-introspect"},
            )
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError,
            asyncpg.InsufficientResourcesError,
        ) as exc:
            last = exc
        except asyncpg.PostgresError as exc:  # bad credentials, unknown database: no retry
            last = exc
            break
    reason = getattr(last, "message", None) or f"{type(last).__name__}: {last}"
    raise TargetUnavailable(f"data source {source.name!r} is unavailable: {reason}") from last


async def _introspect_postgres(source: DataSource) -> list[TableInfo]:
    conn = await _pg_connect(source)
    try:
        async with conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = {_CATALOG_TIMEOUT_MS}")
            table_rows = await conn.fetch(
                _PG_TABLES, list(source.schemas) if source.schemas is not None else None
            )
            table_rows = [
                r for r in table_rows if not _excluded(r["schema"], r["name"], source.exclude, "postgresql")
            ]
            oids = [r["oid"] for r in table_rows]
            column_rows = await conn.fetch(_PG_COLUMNS, oids)
            constraint_rows = await conn.fetch(_PG_CONSTRAINTS, oids)
        tables, sample_targets = _assemble_postgres(table_rows, column_rows, constraint_rows)
        if source.sample_values and sample_targets:
            await _pg_samples(conn, sample_targets)
        return tables
    finally:
        await conn.close()


def _assemble_postgres(
    table_rows: Sequence[Any], column_rows: Sequence[Any], constraint_rows: Sequence[Any]
) -> tuple[list[TableInfo], list[tuple[TableInfo, ColumnInfo]]]:
    by_oid: dict[int, TableInfo] = {}
    kinds: dict[int, str] = {}
    for r in table_rows:
        by_oid[r["oid"]] = TableInfo(
            schema=r["schema"], name=r["name"], comment=r["comment"], columns=[], foreign_keys=[]
        )
        kinds[r["oid"]] = r["kind"]
    known = {(t.schema, t.name) for t in by_oid.values()}

    pk_columns: dict[int, set[str]] = defaultdict(set)
    for r in constraint_rows:
        table = by_oid[r["table_oid"]]
        if r["kind"] == "p":
            pk_columns[r["table_oid"]].update(r["columns"])
        elif (r["ref_schema"], r["ref_table"]) in known:
            table.foreign_keys.append(
                ForeignKey(
                    columns=list(r["columns"]),
                    ref_table=f"{r['ref_schema']}.{r['ref_table']}",
                    ref_columns=list(r["ref_columns"]),
                )
            )

    samples: list[tuple[TableInfo, ColumnInfo]] = []
    for r in column_rows:
        table = by_oid[r["table_oid"]]
        column = ColumnInfo(
            name=r["name"],
            type=r["type"],
            nullable=r["nullable"],
            primary_key=r["name"] in pk_columns[r["table_oid"]],
            comment=r["comment"],
        )
        table.columns.append(column)
        if r["textual"] and kinds[r["table_oid"]] in ("r", "p", "m"):
            samples.append((table, column))
    tables = [t for t in by_oid.values() if t.columns]
    return tables, samples


def _sample_subquery(index: int, table: TableInfo, column: ColumnInfo, dialect: Dialect) -> str:
    relation = (
        quote_ident(table.name)
        if dialect == "sqlite"
        else f"{quote_ident(table.schema)}.{quote_ident(table.name)}"
    )
    col = quote_ident(column.name)
    cast = (
        f"substr(CAST(v AS TEXT), 1, {SAMPLE_MAX_CHARS})"
        if dialect == "sqlite"
        else f"left(v::text, {SAMPLE_MAX_CHARS})"
    )
    return (
        f"SELECT {index} AS i, d.v FROM (SELECT DISTINCT {cast} AS v FROM "
        f"(SELECT {col} AS v FROM {relation} LIMIT {SAMPLE_SCAN_ROWS}) s "
        f"WHERE v IS NOT NULL LIMIT {SAMPLE_MAX_DISTINCT + 1}) d"
    )


def _apply_samples(targets: Sequence[tuple[TableInfo, ColumnInfo]], rows: Iterable[tuple[int, str]]) -> None:
    found: dict[int, list[str]] = defaultdict(list)
    for index, value in rows:
        found[index].append(value)
    for index, values in found.items():
        if len(values) <= SAMPLE_MAX_DISTINCT:
            targets[index][1].sample_values = sorted(values)[:SAMPLE_KEEP]


async def _pg_samples(conn: Any, targets: list[tuple[TableInfo, ColumnInfo]]) -> None:
    for start in range(0, len(targets), _SAMPLE_COLUMNS_PER_QUERY):
        chunk = targets[start : start + _SAMPLE_COLUMNS_PER_QUERY]
        sql = "\nUNION ALL\n".join(
            _sample_subquery(start + i, table, column, "postgresql")
            for i, (table, column) in enumerate(chunk)
        )
        try:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {_SAMPLE_TIMEOUT_MS}")
                rows = await conn.fetch(sql)
        except asyncpg.PostgresError as exc:
            log.warning("sample values skipped for %d columns: %s", len(chunk), exc)
            continue
        _apply_samples(targets, [(r["i"], r["v"]) for r in rows])


# --- SQLite ----------------------------------------------------------------------------------

_SQLITE_TEXT_AFFINITY = ("CHAR", "CLOB", "TEXT")


def _introspect_sqlite(source: DataSource) -> list[TableInfo]:
    try:
        conn = sqlite3.connect(sqlite_uri(source.url), uri=True, timeout=5, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        names = conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
    except sqlite3.Error as exc:
        raise TargetUnavailable(f"data source {source.name!r} is unavailable: {exc}") from exc
    try:
        tables: list[TableInfo] = []
        kinds: dict[str, str] = {}
        for name, kind in names:
            if _excluded("main", name, source.exclude, "sqlite"):
                continue
            try:
                info = conn.execute(
                    'SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid', (name,)
                ).fetchall()
                fks = conn.execute(
                    'SELECT id, seq, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq',
                    (name,),
                ).fetchall()
            except sqlite3.Error as exc:  # e.g. a view over a table that no longer exists
                log.warning("skipping %s in %s: %s", name, source.name, exc)
                continue
            columns = [
                ColumnInfo(name=c, type=t or "", nullable=not (notnull or pk), primary_key=bool(pk))
                for c, t, notnull, pk in info
            ]
            grouped: dict[int, list[tuple[str, str, str | None]]] = defaultdict(list)
            for fk_id, _seq, ref, col, ref_col in fks:
                grouped[fk_id].append((ref, col, ref_col))
            foreign = [
                ForeignKey(
                    columns=[c for _, c, _ in parts],
                    ref_table=parts[0][0],
                    ref_columns=[rc or "" for _, _, rc in parts],
                )
                for _, parts in sorted(grouped.items())
            ]
            tables.append(
                TableInfo(schema="main", name=name, comment=None, columns=columns, foreign_keys=foreign)
            )
            kinds[name] = kind
        _sqlite_resolve_foreign_keys(conn, tables)
        if source.sample_values:
            _sqlite_samples(conn, [t for t in tables if kinds[t.name] == "table"])
        tables.sort(key=lambda t: t.name.lower())
        return tables
    finally:
        conn.close()


def _sqlite_resolve_foreign_keys(conn: sqlite3.Connection, tables: list[TableInfo]) -> None:
    """Fill implicit references (`REFERENCES parent` = its primary key) and drop foreign keys to
    tables outside the snapshot."""
    by_name = {t.name.lower(): t for t in tables}
    for table in tables:
        kept = []
        for fk in table.foreign_keys:
            parent = by_name.get(fk.ref_table.lower())
            if parent is None:
                continue
            if not all(fk.ref_columns):
                pk = [c.name for c in parent.columns if c.primary_key]
                order = dict(
                    conn.execute("SELECT name, pk FROM pragma_table_info(?)", (parent.name,)).fetchall()
                )
                pk.sort(key=lambda c: order.get(c, 0))
                if len(pk) == len(fk.columns):
                    fk.ref_columns = pk
            fk.ref_table = parent.name
            kept.append(fk)
        table.foreign_keys = kept


def _sqlite_samples(conn: sqlite3.Connection, tables: list[TableInfo]) -> None:
    targets = [
        (table, column)
        for table in tables
        for column in table.columns
        if any(marker in column.type.upper() for marker in _SQLITE_TEXT_AFFINITY)
    ]
    deadline = time.monotonic() + _SAMPLE_TIMEOUT_MS / 1000
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        for index, (table, column) in enumerate(targets):
            try:
                rows = conn.execute(_sample_subquery(index, table, column, "sqlite")).fetchall()
            except sqlite3.Error as exc:
                log.warning("sample values skipped for %s.%s: %s", table.name, column.name, exc)
                if time.monotonic() > deadline:
                    return
                continue
            _apply_samples(targets, rows)
    finally:
        conn.set_progress_handler(None, 0)


# --- the prompt text -------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _table_ref(schema: str, name: str, dialect: Dialect) -> str:
    if dialect == "sqlite":
        return _display_ident(name, dialect)
    return f"{_display_ident(schema, dialect)}.{_display_ident(name, dialect)}"


def _fk_ref_text(fk: ForeignKey, dialect: Dialect) -> str:
    schema, _, name = fk.ref_table.rpartition(".") if dialect != "sqlite" else ("", "", fk.ref_table)
    columns = ", ".join(_display_ident(c, dialect) for c in fk.ref_columns)
    return f"{_table_ref(schema, name, dialect)}({columns})"


def render_schema(snapshot: SchemaSnapshot, tables: list[TableInfo], dialect: Dialect) -> str:
    """Compact CREATE TABLE-like text for the prompt: types, NOT NULL, keys, comments, samples."""
    blocks = []
    for table in tables:
        pk = [c.name for c in table.columns if c.primary_key]
        single_fk = {fk.columns[0]: fk for fk in table.foreign_keys if len(fk.columns) == 1}
        lines: list[tuple[str, str | None]] = []
        for column in table.columns:
            text = f"  {_display_ident(column.name, dialect)}"
            if column.type:
                text += f" {column.type}"
            if len(pk) == 1 and column.primary_key:
                text += " PRIMARY KEY"
            elif not column.nullable:
                text += " NOT NULL"
            if column.name in single_fk:
                text += f" REFERENCES {_fk_ref_text(single_fk[column.name], dialect)}"
            notes = []
            if column.comment:
                notes.append(_one_line(column.comment))
            if column.sample_values:
                notes.append("e.g. " + ", ".join(_sql_literal(v) for v in column.sample_values))
            lines.append((text, "; ".join(notes) or None))
        if len(pk) > 1:
            lines.append((f"  PRIMARY KEY ({', '.join(_display_ident(c, dialect) for c in pk)})", None))
        for fk in table.foreign_keys:
            if len(fk.columns) > 1:
                cols = ", ".join(_display_ident(c, dialect) for c in fk.columns)
                lines.append((f"  FOREIGN KEY ({cols}) REFERENCES {_fk_ref_text(fk, dialect)}", None))
        header = f"CREATE TABLE {_table_ref(table.schema, table.name, dialect)} ("
        if table.comment:
            header += f" -- {_one_line(table.comment)}"
        body = []
        for index, (text, note) in enumerate(lines):
            separator = "," if index < len(lines) - 1 else ""
            body.append(f"{text}{separator}" + (f" -- {note}" if note else ""))
        blocks.append("\n".join([header, *body, ");"]))
    return "\n\n".join(blocks)
