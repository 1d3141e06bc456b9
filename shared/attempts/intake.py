"""The API's intake of new attempts: group commit.

Each submit used to be its own INSERT statement and commit. Under load the PostgreSQL backends'
per-statement and per-commit work, and asyncpg's per-call work in the API, were most of a
submit's cost, so concurrent submits now share one statement: a request hands its attempt to
the intake and waits; one task inserts whatever accumulated while the previous insert was in
flight, in one multi-row statement (attempts and their `queued` events, atomic without a
transaction block), and wakes every waiter once it committed. One at a time it is the same single
round trip as before; under load the batches grow by themselves, with no timer.

A request answers 202 only after its own row committed, so durability is unchanged: a failed
statement fails every request of its batch (the same 503 each would have had alone), and the
task messages are handed to the dispatcher only after the commit."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

import msgspec

from shared.attempts.models import Attempt
from shared.attempts.status import Status
from shared.db.database import Database, utcnow

log = logging.getLogger("sqlagent.intake")

# Rows per statement: enough for any burst one API process sees, small enough to keep a
# statement's arrays modest.
BATCH_MAX = 512
# Statements in flight at once. With one, a submit arriving just after a batch left waits for that
# batch's round trip before its own starts; two overlap them, which trims the latency tail at the
# price of somewhat smaller batches.
WRITERS = 2


class NewAttempt(msgspec.Struct, kw_only=True):
    user_id: int
    question: str
    data_source: str
    request_id: str | None = None


def _queued(item: NewAttempt, attempt_id: str, created_at: datetime) -> Attempt:
    """The row as the INSERT writes it (every other column takes its default), without reading it
    back. It is marked dispatched at once: see `shared.tasks.Dispatcher` for why that is safe."""
    return Attempt(
        id=attempt_id,
        user_id=item.user_id,
        question=item.question,
        data_source=item.data_source,
        status=Status.QUEUED.value,
        seq=1,
        sql=None,
        explanation=None,
        error_code=None,
        error_detail=None,
        row_count=None,
        truncated=False,
        rounds=0,
        prompt_tokens=0,
        completion_tokens=0,
        llm_ms=None,
        exec_ms=None,
        created_at=created_at,
        started_at=None,
        finished_at=None,
        dispatched_at=created_at,
        tries=0,
        cancel_requested=False,
        request_hash=None,
    )


_PG_INSERT = """
WITH a AS (
    INSERT INTO attempts (id, user_id, question, data_source, status, seq, created_at, dispatched_at)
    SELECT id, user_id, question, data_source, 'queued', 1, created_at, created_at
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[])
         AS n (id, user_id, question, data_source, created_at)
    RETURNING id, created_at
)
INSERT INTO attempt_events (attempt_id, seq, status, at) SELECT id, 1, 'queued', created_at FROM a
"""


async def mark_undispatched(db: Database, attempt_ids: list[str]) -> None:
    """The intake's rows whose publish failed: the sweeper's next round takes them."""
    if db.dialect == "postgresql":
        await db.execute(
            "UPDATE attempts SET dispatched_at = NULL WHERE id = ANY($1::text[]) AND status = 'queued'",
            attempt_ids,
        )
        return
    async with db.transaction() as tx:
        for attempt_id in attempt_ids:
            await tx.execute(
                "UPDATE attempts SET dispatched_at = NULL WHERE id = $1 AND status = 'queued'", attempt_id
            )


async def insert_many(db: Database, items: list[NewAttempt]) -> list[Attempt]:
    """Insert `queued` attempts and their first events, all or none."""
    now = utcnow()
    rows = [_queued(item, str(uuid.uuid4()), now) for item in items]
    if db.dialect == "postgresql":
        await db.execute(
            _PG_INSERT,
            [r.id for r in rows],
            [r.user_id for r in rows],
            [r.question for r in rows],
            [r.data_source for r in rows],
            [r.created_at for r in rows],
        )
        return rows
    async with db.transaction() as tx:
        for r in rows:
            await tx.execute(
                """INSERT INTO attempts (id, user_id, question, data_source, status, seq, created_at,
                                         dispatched_at)
                   VALUES ($1, $2, $3, $4, 'queued', 1, $5, $5)""",
                r.id,
                r.user_id,
                r.question,
                r.data_source,
                r.created_at,
            )
            await tx.execute(
                "INSERT INTO attempt_events (attempt_id, seq, status, at) VALUES ($1, 1, 'queued', $2)",
                r.id,
                r.created_at,
            )
    return rows


Committed = Callable[[list[tuple[Attempt, NewAttempt]]], None]


class Intake:
    """Batches concurrent submits into one statement. `on_commit` gets each committed batch (the
    dispatcher publishes their task messages)."""

    def __init__(self, db: Database, on_commit: Committed) -> None:
        self._db = db
        self._on_commit = on_commit
        # None is the sentinel `close()` sends: everything queued before it is still written.
        self._queue: asyncio.Queue[tuple[NewAttempt, asyncio.Future[Attempt]] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"sqlagent-intake-{i}") for i in range(WRITERS)]

    async def submit(self, item: NewAttempt) -> Attempt:
        if self._closing or not self._tasks:
            raise RuntimeError("the intake is not running")
        future: asyncio.Future[Attempt] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        # Shielded: a client hanging up must not cancel a row that may already be committing; the
        # row then runs like any accepted attempt.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < BATCH_MAX and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._write(batch)
            if stop:
                return

    async def _write(self, batch: list[tuple[NewAttempt, asyncio.Future[Attempt]]]) -> None:
        items = [item for item, _ in batch]
        try:
            rows = await insert_many(self._db, items)
        except Exception as exc:  # the database failed: each request answers as it would alone
            self._fail(batch, exc)
            return
        except BaseException:  # cancelled mid-statement: no waiter may hang on a shielded future
            self._fail(batch, RuntimeError("the intake stopped"))
            raise
        try:
            self._on_commit(list(zip(rows, items, strict=True)))
        except Exception:  # never strand the waiters: the sweeper publishes undispatched rows
            log.exception("could not hand %d committed attempt(s) to the dispatcher", len(rows))
        for row, (_, future) in zip(rows, batch, strict=True):
            if not future.done():
                future.set_result(row)

    @staticmethod
    def _fail(batch: list[tuple[NewAttempt, asyncio.Future[Attempt]]], exc: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        for _ in self._tasks:
            self._queue.put_nowait(None)  # one sentinel per writer, after everything queued
        await asyncio.gather(*self._tasks, return_exceptions=True)
