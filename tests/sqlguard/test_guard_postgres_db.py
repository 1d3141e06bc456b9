"""The PostgreSQL guard against a real server (127.0.0.1:5432, user postgres, trust auth).

A throwaway database with the corpus schema is created and dropped around the module. Attacks
are only ever given to the guard; the database never runs them — the role is a superuser on a
shared server, and `COPY ... PROGRAM` or `pg_terminate_backend` would really happen. The one
exception, `test_read_only_transaction_alone_is_not_enough`, runs a few attacks whose effects
end with the rolled-back transaction, to show what the guard is there for.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from corpus_postgres import ATTACKS, EXECUTOR_SEARCH_PATH, POLICY, SAFE, SCHEMA_DDL

from shared.pipeline_errors import SqlRejected
from shared.sqlguard import PostgresPolicy, check_postgres
from shared.sqlguard.functions import ALLOWED_FUNCTIONS, ALLOWED_TYPES

_SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}

# Volatile built-ins we allow anyway: they only read clocks or the random generator.
_HARMLESS_VOLATILE = {
    "clock_timestamp",
    "timeofday",
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "array_sample",
    "array_shuffle",
}


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[asyncpg.Connection]:
    try:
        admin = await asyncpg.connect(**_SERVER, database="postgres", timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    name = f"sqlguard_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(**_SERVER, database=name, timeout=5)
        try:
            await conn.execute(SCHEMA_DDL)
            yield conn
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _introspected_policy(conn: asyncpg.Connection) -> PostgresPolicy:
    rows = await conn.fetch(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
             AND (n.nspname, c.relname) <> ('public', 'secrets')"""
    )
    return PostgresPolicy(
        allowed_tables=frozenset((r["nspname"], r["relname"]) for r in rows),
        search_path=POLICY.search_path,
    )


async def test_corpus_policy_is_what_introspection_yields(db: asyncpg.Connection) -> None:
    assert await _introspected_policy(db) == POLICY


async def test_every_attack_is_rejected_under_the_introspected_policy(db: asyncpg.Connection) -> None:
    policy = await _introspected_policy(db)
    wrong = []
    for sql, rule in ATTACKS:
        try:
            check_postgres(sql, policy)
            wrong.append((sql, "PASSED"))
        except SqlRejected as exc:
            if exc.rule != rule:
                wrong.append((sql, exc.rule))
    assert wrong == []


@asynccontextmanager
async def _read_only(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """BEGIN READ ONLY with a statement timeout, always rolled back (as the executor does)."""
    transaction = conn.transaction(readonly=True)
    await transaction.start()
    try:
        await conn.execute("SET LOCAL statement_timeout = '2s'")
        yield
    finally:
        await transaction.rollback()


def _rows(records: list[asyncpg.Record]) -> tuple[list[str], list[str]]:
    columns = list(records[0].keys()) if records else []
    return columns, sorted(repr(tuple(r.values())) for r in records)


@pytest.mark.parametrize("sql", SAFE, ids=[sql[:60] for sql in SAFE])
async def test_safe_query_runs_and_normalising_keeps_its_meaning(db: asyncpg.Connection, sql: str) -> None:
    normalised = check_postgres(sql, POLICY)
    # One transaction for all three runs, so now() and friends agree.
    async with _read_only(db):
        await db.execute(f"SET LOCAL search_path = {EXECUTOR_SEARCH_PATH}")
        original = _rows(await db.fetch(sql))
        assert original[1], "the safe corpus should return rows"
        assert _rows(await db.fetch(normalised)) == original
        # Every relation and function in the output is qualified: it means the same even with
        # an empty search_path.
        await db.execute("SET LOCAL search_path = ''")
        assert _rows(await db.fetch(normalised)) == original


async def test_allowlisted_functions_are_builtin_and_not_volatile(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        """SELECT p.proname, string_agg(DISTINCT p.provolatile::text, '') AS volatility
           FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = any($1::text[])
           GROUP BY p.proname""",
        sorted(ALLOWED_FUNCTIONS),
    )
    volatile = {r["proname"] for r in rows if "v" in r["volatility"]}
    assert volatile <= _HARMLESS_VOLATILE
    # Names absent here are newer built-ins or functional-cast spellings (`jsonb(x)`), which
    # PostgreSQL turns into casts.
    missing = ALLOWED_FUNCTIONS - {r["proname"] for r in rows}
    type_names = {r["typname"] for r in await db.fetch("SELECT typname FROM pg_type")}
    unexplained = {name for name in missing if name not in type_names}
    assert unexplained <= {
        "any_value",
        "array_reverse",
        "array_sample",
        "array_shuffle",
        "array_sort",
        "casefold",
        "crc32",
        "crc32c",
        "date_add",
        "date_subtract",
        "erf",
        "erfc",
        "gamma",
        "lgamma",
        "random_normal",
        "json_agg_strict",
        "jsonb_agg_strict",
        "json_object_agg_strict",
        "jsonb_object_agg_strict",
        "json_object_agg_unique",
        "jsonb_object_agg_unique",
        "json_object_agg_unique_strict",
        "jsonb_object_agg_unique_strict",
        "uuid_extract_timestamp",
        "uuid_extract_version",
        "uuidv4",
        "uuidv7",
    }


async def test_allowlisted_types_exist_in_pg_catalog(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        "SELECT typname FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace AND typname = "
        "any($1::text[])",
        sorted(ALLOWED_TYPES),
    )
    assert {r["typname"] for r in rows} == ALLOWED_TYPES


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT set_config('work_mem', '1MB', false)",
        "SELECT pg_advisory_xact_lock(4242)",
        "SELECT lo_create(0)",
        "SELECT pg_notify('sqlguard_test', 'payload')",
    ],
)
async def test_read_only_transaction_alone_is_not_enough(db: asyncpg.Connection, sql: str) -> None:
    # Each of these succeeds inside BEGIN READ ONLY. Rolled back, their effects end here; with
    # session-level variants (pg_advisory_lock, ...) they would outlive the transaction.
    async with _read_only(db):
        await db.fetch(sql)
    with pytest.raises(SqlRejected, match="function_not_allowed"):
        check_postgres(sql, POLICY)
