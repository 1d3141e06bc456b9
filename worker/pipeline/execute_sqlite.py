"""SQLite (`SqliteTarget`): stdlib sqlite3 in a worker thread (`asyncio.to_thread`), not aiosqlite:
the guard's `harden_connection` needs the raw `sqlite3.Connection`, and open + harden + execute +
fetch + encode all happen in one thread hop per statement instead of one hop per call. A fresh
read-only connection (`mode=ro`, plus `immutable=1` for the bundled demo file) per statement: it
costs well under a millisecond and shares nothing between attempts. The statement timeout and task
cancellation are a progress handler that aborts the VM. Column types: Python's sqlite3 exposes no
`sqlite3_column_decltype`, so `type` is the storage class of the column's first non-NULL value in
the result (`integer`, `real`, `text`, `blob`), or `null` when every value is NULL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time

from shared.pipeline_errors import (
    OperationTimeout,
    SqlExecutionError,
    SqlRejected,
    TargetUnavailable,
)
from shared.results.values import Column, to_json_value
from shared.targets.config import DataSource
from shared.targets.introspect import sqlite_uri
from worker.pipeline.rows import MAX_DETAIL_CHARS as _MAX_DETAIL_CHARS
from worker.pipeline.rows import ExecutionLimits, ResultSet
from worker.pipeline.rows import RowCollector as _RowCollector

log = logging.getLogger(__name__)

_SQLITE_PROGRESS_STEPS = 1000
_SQLITE_UNAVAILABLE_MARKERS = (
    "unable to open database",
    "database is locked",
    "disk i/o error",
    "file is not a database",
    "database disk image is malformed",
)
_SQLITE_STORAGE_CLASS = {int: "integer", float: "real", str: "text", bytes: "blob"}


def _sqlite_type_name(kind: type | None) -> str:
    """The storage class of a column's first non-NULL value; "null" when there was none."""
    return _SQLITE_STORAGE_CLASS.get(kind, "null") if kind is not None else "null"


class _SqliteRun:
    """Shared between the event loop (which may cancel) and the thread running the statement."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.cancelled = threading.Event()
        self.timed_out = False

    def progress(self) -> int:
        if self.cancelled.is_set():
            return 1
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1
        return 0


class SqliteTarget:
    def __init__(self, source: DataSource, uri: str, allowed_tables: frozenset[str]) -> None:
        self.source = source
        self._uri = uri
        self._allowed_tables = allowed_tables
        self._running = 0
        self._running_lock = threading.Lock()

    @classmethod
    async def open(
        cls, source: DataSource, allowed_tables: frozenset[str], *, immutable: bool | None = None
    ) -> SqliteTarget:
        """`immutable=True` (or `?immutable=1` in the URL) for files nothing writes, such as the
        bundled demo database: SQLite then skips locking entirely."""
        if source.dialect != "sqlite":
            raise ValueError(f"data source {source.name!r} is not SQLite")
        uri = sqlite_uri(source.url, immutable=immutable)
        target = cls(source, uri, allowed_tables)
        await asyncio.to_thread(target._probe)
        return target

    async def close(self) -> None:
        """Nothing to release: each statement uses its own short-lived connection."""

    @property
    def running(self) -> int:
        """Statements executing in worker threads right now."""
        return self._running

    def _count_running(self, delta: int) -> None:
        with self._running_lock:
            self._running += delta

    def _connect(self, timeout_s: float) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self._uri, uri=True, timeout=timeout_s, check_same_thread=False)
        except sqlite3.Error as exc:
            raise TargetUnavailable(f"data source {self.source.name!r} is unavailable: {exc}") from exc

    def _probe(self) -> None:
        conn = self._connect(5.0)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise TargetUnavailable(f"data source {self.source.name!r} is unavailable: {exc}") from exc
        finally:
            conn.close()

    async def run(self, sql: str, *, limits: ExecutionLimits) -> ResultSet:
        state = _SqliteRun(time.monotonic() + limits.statement_timeout_s)
        work = asyncio.ensure_future(asyncio.to_thread(self._run_sync, sql, limits, state))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # The progress handler stops the VM within ~1000 steps; wait for that, so that a
            # cancelled attempt has really stopped reading when the cancellation propagates.
            state.cancelled.set()
            with contextlib.suppress(BaseException):
                await work
            raise

    def _run_sync(self, sql: str, limits: ExecutionLimits, state: _SqliteRun) -> ResultSet:
        # Imported here: the guard module is another package; a missing guard must fail the
        # SQLite path loudly, not the import of the PostgreSQL executor.
        from shared.sqlguard.sqlite import harden_connection

        conn = self._connect(min(5.0, limits.statement_timeout_s))
        self._count_running(+1)
        try:
            try:
                harden_connection(conn, self._allowed_tables)
                conn.set_progress_handler(state.progress, _SQLITE_PROGRESS_STEPS)
                cursor = conn.execute(sql)
                width = len(cursor.description or ())
                collector = _RowCollector(limits, [None] * width)
                raw_types: list[type | None] = [None] * width
                while not collector.done:
                    wanted = collector.next_batch_size()
                    batch = cursor.fetchmany(wanted)
                    converted = []
                    for raw in batch:
                        row = []
                        for index, value in enumerate(raw):
                            if value is not None and raw_types[index] is None:
                                raw_types[index] = type(value)
                            row.append(
                                value if type(value) in (int, str) or value is None else to_json_value(value)
                            )
                        converted.append(row)
                    collector.add(converted)
                    if len(batch) < wanted:
                        collector.finish()
                cursor.close()
            except sqlite3.Error as exc:
                raise self._map_error(exc, state, limits) from exc
            except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
                raise SqlExecutionError(str(exc)) from exc
            names = [d[0] for d in cursor.description or ()]
            types = [_sqlite_type_name(kind) for kind in raw_types]
            return ResultSet(
                columns=[Column(name=n, type=t) for n, t in zip(names, types, strict=True)],
                rows=collector.rows,
                truncated=collector.truncated,
                byte_size=collector.byte_size,
            )
        finally:
            conn.close()
            self._count_running(-1)

    def _map_error(self, exc: sqlite3.Error, state: _SqliteRun, limits: ExecutionLimits) -> Exception:
        message = str(exc)
        lowered = message.lower()
        if "interrupted" in lowered and (state.timed_out or state.cancelled.is_set()):
            return OperationTimeout(
                f"the statement ran longer than {limits.statement_timeout_s:g} s and was interrupted"
            )
        if "not authorized" in lowered or "prohibited" in lowered:
            # The authorizer is the SQLite guard (DESIGN "The guard"): this is a refusal.
            return SqlRejected("sqlite_authorizer", message)
        if any(marker in lowered for marker in _SQLITE_UNAVAILABLE_MARKERS):
            return TargetUnavailable(f"data source {self.source.name!r} is unavailable: {message}")
        return SqlExecutionError(message[:_MAX_DETAIL_CHARS])
