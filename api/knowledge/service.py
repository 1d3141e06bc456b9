"""Writing knowledge examples: every example's SQL must pass its data source's guard.

The check is the one the worker applies before running an example (`shared.sqlguard.policy`,
against the data source's latest schema snapshot, taken now if there is none), plus proof that
the statement compiles there: SQLite's guard compiles it anyway; on PostgreSQL the guarded
statement is prepared (never executed) in a READ ONLY transaction, so an unknown column is
refused at save time rather than when a user's question first matches it. Either failure is
422 SQL_REJECTED naming the rule or the database's message; a target that cannot be reached is
503, since the example cannot be verified.

The SQL stored is the admin's text (trimmed), not the guard's normalised form: it is what they
wrote and will edit, and the guard re-checks it on every use anyway."""

from __future__ import annotations

import sqlite3

import asyncpg
import msgspec

from api.datasources import service as datasources
from api.errors import KnowledgeNotFound, RequestValidationError, SqlRejectedError
from api.knowledge.schemas import MAX_QUESTION, MAX_SQL, KnowledgeWrite
from api.state import Services
from shared.knowledge import repository as knowledge
from shared.knowledge.repository import Example
from shared.pipeline_errors import SqlExecutionError, SqlRejected
from shared.sqlguard import policy
from shared.targets.config import DataSource
from shared.targets.introspect import SchemaSnapshot, quote_ident
from shared.users.repository import User

_MAX_ID = 2**63 - 1
_CONNECT_TIMEOUT_S = 10
_PREPARE_TIMEOUT_MS = 5_000
_LOCK_TIMEOUT_MS = 1_000
# SQLSTATE classes that mean "this statement is wrong" rather than "the server is in trouble":
# syntax or access rule (42: unknown column, table, function, permission), data exception (22:
# a bad literal), feature not supported (0A).
_STATEMENT_FAULTS = ("42", "22", "0A")


class CheckedExample(msgspec.Struct, frozen=True):
    question: str
    sql: str
    data_source: str
    notes: str | None


def example_id(raw: str) -> int:
    """A path id as a database id; anything that cannot be one is simply not found."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= _MAX_ID:
        raise KnowledgeNotFound()
    return int(raw)


async def checked(svc: Services, data: KnowledgeWrite) -> CheckedExample:
    question = data.question.strip()
    if not question:
        raise RequestValidationError(["body", "question"], "must not be empty")
    if len(question) > MAX_QUESTION:
        raise RequestValidationError(["body", "question"], f"must be at most {MAX_QUESTION} characters")
    sql = data.sql.strip()
    if not sql:
        raise RequestValidationError(["body", "sql"], "must not be empty")
    if len(sql) > MAX_SQL:
        raise RequestValidationError(["body", "sql"], f"must be at most {MAX_SQL} characters")
    notes = data.notes.strip() if data.notes is not None else None
    source = datasources.data_source(svc, data.data_source)
    snapshot = await datasources.current(svc, source)
    await verify_sql(source, snapshot, sql)
    return CheckedExample(question=question, sql=sql, data_source=source.name, notes=notes or None)


async def verify_sql(source: DataSource, snapshot: SchemaSnapshot, sql: str) -> None:
    try:
        guarded = await policy.check(source, snapshot, sql)
    except SqlRejected as exc:
        hint = ""
        if exc.rule == "relation_not_allowed":
            refresh = f"POST /api/data-sources/{source.name}/schema/refresh"
            hint = f" (if the table is new, refresh the schema: {refresh})"
        raise SqlRejectedError(f"The SQL was rejected by the guard: {exc.detail}{hint}") from None
    except SqlExecutionError as exc:
        raise SqlRejectedError(
            f"The SQL failed to compile on data source {source.name!r}: {exc.detail}"
        ) from None
    except sqlite3.Error as exc:  # the target file cannot be opened
        raise datasources.unavailable(source, exc) from exc
    if source.dialect == "postgresql":
        await _prepare_on_postgres(source, snapshot, guarded)


async def _prepare_on_postgres(source: DataSource, snapshot: SchemaSnapshot, guarded: str) -> None:
    path = ", ".join(
        [*(quote_ident(s) for s in policy.search_path(source, snapshot)), "pg_catalog", "pg_temp"]
    )
    try:
        conn = await asyncpg.connect(
            source.url,
            timeout=_CONNECT_TIMEOUT_S,
            statement_cache_size=0,
            server_settings={"application_name": "sqlagent-knowledge-check"},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise datasources.unavailable(source, exc) from exc
    try:
        async with conn.transaction(readonly=True):
            await conn.execute(
                f"SET LOCAL statement_timeout = {_PREPARE_TIMEOUT_MS}; "
                f"SET LOCAL lock_timeout = {_LOCK_TIMEOUT_MS}; "
                f"SET LOCAL search_path TO {path}"
            )
            # Parse and plan only: the guarded statement is never executed here.
            await conn.prepare(guarded)
    except asyncpg.PostgresError as exc:
        if str(exc.sqlstate or "").startswith(_STATEMENT_FAULTS):
            message = getattr(exc, "message", None) or str(exc)
            raise SqlRejectedError(
                f"The SQL failed to compile on data source {source.name!r}: {message}"
            ) from None
        raise datasources.unavailable(source, exc) from exc
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        raise datasources.unavailable(source, exc) from exc
    finally:
        await conn.close(timeout=5)


async def create(svc: Services, user: User, data: KnowledgeWrite) -> Example:
    example = await checked(svc, data)
    return await knowledge.create(
        svc.db,
        question=example.question,
        sql=example.sql,
        data_source=example.data_source,
        notes=example.notes,
        created_by=user.id,
    )


async def get(svc: Services, raw_id: str) -> Example:
    example = await knowledge.get(svc.db, example_id(raw_id))
    if example is None:
        raise KnowledgeNotFound()
    return example


async def replace(svc: Services, raw_id: str, data: KnowledgeWrite) -> Example:
    # Not found before the (possibly slow) check against the target.
    current = await get(svc, raw_id)
    example = await checked(svc, data)
    updated = await knowledge.update(
        svc.db,
        current.id,
        question=example.question,
        sql=example.sql,
        data_source=example.data_source,
        notes=example.notes,
    )
    if updated is None:  # deleted meanwhile
        raise KnowledgeNotFound()
    return updated


async def delete(svc: Services, raw_id: str) -> None:
    if not await knowledge.delete(svc.db, example_id(raw_id)):
        raise KnowledgeNotFound()


async def page(
    svc: Services, *, data_source: str | None, page: int, page_size: int
) -> tuple[list[Example], int]:
    if data_source is not None:
        datasources.data_source(svc, data_source)
    return await knowledge.page(svc.db, data_source=data_source, page=page, page_size=page_size)
