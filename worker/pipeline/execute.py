"""Run one guarded, read-only statement on a target database and keep its rows as JSON values.

The SQL reaching this module has already passed the guard (shared/sqlguard); the execution rules
here are the guard's last layers (DESIGN "The guard"), so they hold even for SQL the guard missed:

PostgreSQL (`PostgresTarget`, one asyncpg pool per data source and event loop):
  * one round trip of our own constants opens the transaction: `BEGIN READ ONLY`, then
    `SET LOCAL` statement_timeout, lock_timeout, idle_in_transaction_session_timeout and
    search_path (the allowed schemas, then pg_catalog, then pg_temp — each quoted);
  * the statement itself goes only through the extended protocol: Parse (a prepared statement,
    which PostgreSQL refuses to hold more than one command) + Bind + Execute on a portal, fetched
    in batches, so at most row_cap + 1 rows ever leave the server and a 10M-row result is never
    pulled; the byte cap is the size of the encoded JSON rows, measured as they arrive;
  * always ROLLBACK, and in the same round trip asyncpg's reset query (`SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`, `Connection.get_reset_query`),
    so the connection goes back to the pool as a new one; if that fails the connection is
    terminated instead. A connection released any other way gets asyncpg's full reset;
  * cancelling the awaiting task makes asyncpg send a CancelRequest for the running statement
    (verified by tests/pipeline/test_execute_postgres.py with pg_stat_activity); a client-side
    deadline slightly above statement_timeout covers the time between batch fetches.
  * statement_cache_size=0: generated SQL is never reused, so statements are unnamed and leave
    nothing prepared on the server.

SQLite: `worker/pipeline/execute_sqlite.py`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.pipeline_errors import (
    OperationTimeout,
    SqlExecutionError,
    TargetUnavailable,
)
from shared.results.values import (
    Column,
    configure_asyncpg_codecs,
    converter_for_type,
    pg_type_name,
)
from shared.targets.config import DataSource
from shared.targets.introspect import quote_ident
from worker.pipeline.execute_sqlite import SqliteTarget
from worker.pipeline.rows import MAX_DETAIL_CHARS as _MAX_DETAIL_CHARS
from worker.pipeline.rows import ExecutionLimits, ResultSet
from worker.pipeline.rows import RowCollector as _RowCollector

__all__ = ["ExecutionLimits", "PostgresTarget", "ResultSet", "SqliteTarget"]

log = logging.getLogger(__name__)

_CONNECT_TRIES = 3
_CONNECT_BACKOFF_S = (0.2, 0.5)
# The server's statement_timeout should fire first; the client deadline is the backstop that
# also bounds the time spent between batch fetches.
_CLIENT_GRACE_S = 1.0
_ROLLBACK_TIMEOUT_S = 5.0


# Failures that mean "the database is not there (now)", not "the SQL is wrong".
_PG_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, DNS (socket.gaierror), and TimeoutError (an OSError) of a connect
    asyncpg.PostgresConnectionError,  # class 08, incl. ConnectionDoesNotExistError
    asyncpg.InsufficientResourcesError,  # class 53, incl. TooManyConnectionsError
    asyncpg.CannotConnectNowError,  # starting up / shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InvalidAuthorizationSpecificationError,  # bad user/password: retrying won't help
    asyncpg.InvalidCatalogNameError,  # the database does not exist
    asyncpg.TransactionRollbackError,  # serialization failure / recovery conflict on a replica
)
_PG_NOT_RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


def _seconds_to_ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _setup_sql(search_path: Sequence[str], limits: ExecutionLimits) -> str:
    """Our own constants (integers and quoted identifiers), sent as one simple-query round trip."""
    path = ", ".join([*(quote_ident(schema) for schema in search_path), "pg_catalog", "pg_temp"])
    idle_ms = _seconds_to_ms(limits.statement_timeout_s + _CLIENT_GRACE_S + 5)
    return (
        "BEGIN TRANSACTION READ ONLY;\n"
        f"SET LOCAL statement_timeout = {_seconds_to_ms(limits.statement_timeout_s)};\n"
        f"SET LOCAL lock_timeout = {_seconds_to_ms(limits.lock_timeout_s)};\n"
        f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms};\n"
        f"SET LOCAL search_path TO {path};"
    )


def _describe_pg_error(exc: asyncpg.PostgresError, sql: str) -> str:
    """PostgreSQL's message, psql-style: ERROR, the line with a caret, DETAIL and HINT."""
    message = getattr(exc, "message", None) or str(exc)
    parts = [f"{message} (SQLSTATE {exc.sqlstate})" if exc.sqlstate else message]
    position = getattr(exc, "position", None)
    if position and str(position).isdigit() and 0 < int(position) <= len(sql) + 1:
        offset = int(position) - 1
        line_start = sql.rfind("\n", 0, offset) + 1
        line_end = sql.find("\n", offset)
        line = sql[line_start : line_end if line_end >= 0 else len(sql)]
        line_no = sql.count("\n", 0, offset) + 1
        prefix = f"LINE {line_no}: "
        parts.append(f"{prefix}{line}\n{' ' * (len(prefix) + offset - line_start)}^")
    if getattr(exc, "detail", None):
        parts.append(f"DETAIL: {exc.detail}")
    if getattr(exc, "hint", None):
        parts.append(f"HINT: {exc.hint}")
    return "\n".join(parts)[:_MAX_DETAIL_CHARS]


def _unavailable(source: DataSource, exc: BaseException) -> TargetUnavailable:
    # Never echo the URL: it may carry a password. OSError texts name only host and port.
    if isinstance(exc, TimeoutError):
        reason = "timed out connecting"
    elif isinstance(exc, asyncpg.PostgresError):
        reason = getattr(exc, "message", None) or str(exc)
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return TargetUnavailable(f"data source {source.name!r} is unavailable: {reason}")


class _TargetConnection(asyncpg.Connection):  # type: ignore[misc]
    """Remembers whether `_finish` already reset it, so the pool's reset can skip a round trip."""

    __slots__ = ("_sqlagent_reset",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sqlagent_reset = False

    async def rollback_and_reset(self) -> None:
        await self.execute("ROLLBACK;\n" + self.get_reset_query())
        self._sqlagent_reset = True


async def _reset_on_release(conn: _TargetConnection) -> None:
    """The pool's reset (after asyncpg's own ROLLBACK of an open transaction)."""
    if conn._sqlagent_reset:
        conn._sqlagent_reset = False
        return
    await conn.execute(conn.get_reset_query())


class PostgresTarget:
    """An asyncpg pool for one PostgreSQL data source. Create one per worker process and event
    loop (a pool is bound to the loop it was created on)."""

    def __init__(self, source: DataSource, pool: asyncpg.Pool, connect_timeout_s: float) -> None:
        self.source = source
        self._pool = pool
        self._connect_timeout_s = connect_timeout_s

    @classmethod
    async def open(
        cls,
        source: DataSource,
        *,
        min_size: int = 0,
        # Per data source and worker process: attempts spend most of their time waiting on the
        # LLM, so a few connections serve dozens of them, and a worker with many data sources
        # stays well inside the target's max_connections.
        max_size: int = 4,
        connect_timeout_s: float = 10,
    ) -> PostgresTarget:
        """Create the pool. With min_size=0 nothing connects yet: an unreachable target fails
        its first `run` with TargetUnavailable, not here."""
        if source.dialect != "postgresql":
            raise ValueError(f"data source {source.name!r} is not PostgreSQL")
        try:
            pool = await asyncpg.create_pool(
                source.url,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout_s,  # per connection attempt
                statement_cache_size=0,
                max_inactive_connection_lifetime=120,
                connection_class=_TargetConnection,
                reset=_reset_on_release,
                init=configure_asyncpg_codecs,
                server_settings={
                    "application_name": "sqlagent-executor",
                    # A second fence under BEGIN READ ONLY; RESET ALL keeps it (session default).
                    "default_transaction_read_only": "on",
                },
            )
        except _PG_UNAVAILABLE as exc:
            raise _unavailable(source, exc) from exc
        return cls(source, pool, connect_timeout_s)

    async def close(self) -> None:
        await self._pool.close()

    async def run(self, sql: str, *, search_path: tuple[str, ...], limits: ExecutionLimits) -> ResultSet:
        setup = _setup_sql(search_path, limits)
        conn = await self._begin(setup, limits)
        try:
            return await self._fetch(conn, sql, limits)
        finally:
            await self._finish(conn)

    async def _begin(self, setup: str, limits: ExecutionLimits) -> Any:
        """A pooled connection inside our read-only transaction. Retries a few times with a
        short backoff: a refused connection, a restarting server, a full server, or a pooled
        connection that died while idle (the usual case after a target restart)."""
        acquire_timeout = self._connect_timeout_s + limits.statement_timeout_s
        last: BaseException | None = None
        for attempt in range(_CONNECT_TRIES):
            if attempt:
                await asyncio.sleep(_CONNECT_BACKOFF_S[min(attempt - 1, len(_CONNECT_BACKOFF_S) - 1)])
            try:
                conn = await self._pool.acquire(timeout=acquire_timeout)
            except _PG_UNAVAILABLE as exc:
                last = exc
                if isinstance(exc, _PG_NOT_RETRYABLE):
                    break
                continue
            try:
                await conn.execute(setup)
            except _PG_UNAVAILABLE as exc:
                last = exc
                conn.terminate()
                await self._pool.release(conn)
                continue
            except BaseException:
                conn.terminate()
                await self._pool.release(conn)
                raise
            return conn
        assert last is not None
        log.warning("target %s unavailable after %d tries: %r", self.source.name, _CONNECT_TRIES, last)
        raise _unavailable(self.source, last) from last

    async def _fetch(self, conn: Any, sql: str, limits: ExecutionLimits) -> ResultSet:
        try:
            async with asyncio.timeout(limits.statement_timeout_s + _CLIENT_GRACE_S):
                stmt = await conn.prepare(sql)
                attributes = stmt.get_attributes()
                columns = [Column(name=a.name, type=pg_type_name(a.type)) for a in attributes]
                collector = _RowCollector(limits, [converter_for_type(c.type) for c in columns])
                cursor = await stmt.cursor()
                while not collector.done:
                    wanted = collector.next_batch_size()
                    batch = await cursor.fetch(wanted)
                    collector.add(batch)
                    if len(batch) < wanted:
                        collector.finish()
        except TimeoutError as exc:
            raise OperationTimeout(
                f"the statement ran longer than {limits.statement_timeout_s:g} s and was cancelled"
            ) from exc
        except asyncpg.QueryCanceledError as exc:
            raise OperationTimeout(
                f"{exc.message} (limit {limits.statement_timeout_s:g} s)"
                if "statement timeout" in str(exc)
                else str(exc)
            ) from exc
        except asyncpg.LockNotAvailableError as exc:
            raise OperationTimeout(
                f"{exc.message}: a table is locked by another session (for example a migration)"
            ) from exc
        except _PG_UNAVAILABLE as exc:
            raise _unavailable(self.source, exc) from exc
        except asyncpg.PostgresError as exc:
            raise SqlExecutionError(_describe_pg_error(exc, sql)) from exc
        except asyncpg.InterfaceError as exc:
            if conn.is_closed():
                raise _unavailable(self.source, exc) from exc
            # e.g. a result type asyncpg cannot decode: the model can cast it to text.
            raise SqlExecutionError(f"{exc} (cast the column to text, e.g. col::text)") from exc
        return ResultSet(
            columns=columns, rows=collector.rows, truncated=collector.truncated, byte_size=collector.byte_size
        )

    async def _finish(self, conn: Any) -> None:
        """Roll back and return the connection; terminate it instead when its state is unknown."""
        try:
            if not conn.is_closed():
                async with asyncio.timeout(_ROLLBACK_TIMEOUT_S):
                    await conn.rollback_and_reset()
        except BaseException as exc:
            log.info("terminating target connection after failed rollback: %r", exc)
            conn.terminate()
            if not isinstance(exc, Exception):  # CancelledError & co. keep propagating
                raise
        finally:
            await self._pool.release(conn)
