"""Explicit SQL for attempts and their events. Every status change is a conditional UPDATE
(`WHERE status = ANY(expected)`) plus an event row in one transaction, so a redelivered task or a
racing reaper can never move an attempt twice."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import msgspec

from shared.attempts.models import Attempt, Event
from shared.attempts.status import RUNNING, TERMINAL, Status
from shared.db.database import Database, Executor, Row, utcnow
from shared.knowledge import repository as knowledge
from shared.results import repository as results

_COLUMNS = (
    "id, user_id, question, data_source, status, seq, sql, explanation, error_code, error_detail, "
    "row_count, truncated, rounds, prompt_tokens, completion_tokens, llm_ms, exec_ms, created_at, "
    "started_at, finished_at, dispatched_at, tries, cancel_requested, request_hash"
)

_FIELDS = frozenset(
    {
        "sql",
        "explanation",
        "error_code",
        "error_detail",
        "row_count",
        "truncated",
        "rounds",
        "prompt_tokens",
        "completion_tokens",
        "llm_ms",
        "exec_ms",
        "started_at",
        "finished_at",
        "lease_owner",
        "lease_expires_at",
        "tries",
        "dispatched_at",
    }
)


class Increment:
    """A field value meaning `field = field + 1`."""


INCREMENT = Increment()


def _attempt(row: Row) -> Attempt:
    return Attempt(**{k: row[k] for k in Attempt.__struct_fields__})


def _event(row: Row) -> Event:
    return Event(
        id=row["attempt_id"],
        seq=row["seq"],
        status=row["status"],
        at=row["at"],
        error_code=row["error_code"],
        detail=row["detail"],
    )


def _in_list(values: Collection[str], start: int) -> tuple[str, list[str]]:
    """`IN ($n, $n+1, …)` for both dialects (SQLite has no arrays)."""
    items = sorted(values)
    return "(" + ", ".join(f"${start + i}" for i in range(len(items))) + ")", items


async def create(
    db: Database,
    *,
    user_id: int,
    question: str,
    data_source: str,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> Attempt:
    """Insert a `queued` attempt and its first event, atomically."""
    args = (str(uuid.uuid4()), user_id, question, data_source, utcnow(), idempotency_key, request_hash)
    insert = f"""INSERT INTO attempts (id, user_id, question, data_source, status, seq, created_at,
                                       idempotency_key, request_hash)
                 VALUES ($1, $2, $3, $4, 'queued', 1, $5, $6, $7) RETURNING {_COLUMNS}"""
    if db.dialect == "postgresql":
        # One statement, one round trip: it is atomic without a transaction block.
        row = await db.fetchrow(
            f"""WITH a AS ({insert}),
                     e AS (INSERT INTO attempt_events (attempt_id, seq, status, at)
                           SELECT id, 1, 'queued', created_at FROM a)
                SELECT {_COLUMNS} FROM a""",
            *args,
        )
    else:
        async with db.transaction() as tx:
            row = await tx.fetchrow(insert, *args)
            await tx.execute(
                "INSERT INTO attempt_events (attempt_id, seq, status, at) VALUES ($1, 1, 'queued', $2)",
                args[0],
                args[4],
            )
    assert row is not None
    return _attempt(row)


async def get(db: Executor, attempt_id: str) -> Attempt | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM attempts WHERE id = $1", attempt_id)
    return None if row is None else _attempt(row)


async def get_by_idempotency_key(db: Executor, user_id: int, key: str, since: datetime) -> Attempt | None:
    row = await db.fetchrow(
        f"""SELECT {_COLUMNS} FROM attempts
            WHERE user_id = $1 AND idempotency_key = $2 AND created_at >= $3""",
        user_id,
        key,
        since,
    )
    return None if row is None else _attempt(row)


async def expire_idempotency_key(db: Executor, user_id: int, key: str, before: datetime) -> None:
    """Keys are honoured for 24 h; an older attempt gives its key up so the key can be reused."""
    await db.execute(
        """UPDATE attempts SET idempotency_key = NULL
           WHERE user_id = $1 AND idempotency_key = $2 AND created_at < $3""",
        user_id,
        key,
        before,
    )


async def page(
    db: Executor,
    *,
    user_id: int | None,
    status: str | None,
    page: int,
    page_size: int,
) -> tuple[list[Attempt], int]:
    conditions: list[str] = []
    args: list[Any] = []
    if user_id is not None:
        args.append(user_id)
        conditions.append(f"user_id = ${len(args)}")
    if status is not None:
        args.append(status)
        conditions.append(f"status = ${len(args)}")
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    total = await db.fetchval(f"SELECT count(*) FROM attempts {where}", *args)
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM attempts {where}
            ORDER BY created_at DESC, id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""",
        *args,
        page_size,
        (page - 1) * page_size,
    )
    return [_attempt(r) for r in rows], int(total)


async def mark_dispatched(db: Executor, attempt_ids: Collection[str]) -> None:
    if not attempt_ids:
        return
    placeholders, items = _in_list(attempt_ids, 2)
    await db.execute(
        f"UPDATE attempts SET dispatched_at = $1 WHERE id IN {placeholders} AND status = 'queued'",
        utcnow(),
        *items,
    )


async def transition(
    db: Database,
    attempt_id: str,
    *,
    expected: Collection[str],
    to: Status,
    error_code: str | None = None,
    detail: str | None = None,
    lease_expired_before: datetime | None = None,
    **fields: Any,
) -> Event | None:
    """Move the attempt to `to` if it is in one of `expected` (and, for the reaper, its lease
    expired before the given time); record the event. None: it was not — another worker, the
    reaper or a cancel got there first — and nothing was written."""
    if db.dialect == "postgresql":  # a single statement there: atomic on its own
        return await transition_in(
            db,
            attempt_id,
            expected=expected,
            to=to,
            error_code=error_code,
            detail=detail,
            lease_expired_before=lease_expired_before,
            **fields,
        )
    async with db.transaction() as tx:
        return await transition_in(
            tx,
            attempt_id,
            expected=expected,
            to=to,
            error_code=error_code,
            detail=detail,
            lease_expired_before=lease_expired_before,
            **fields,
        )


async def transition_in(
    tx: Executor,
    attempt_id: str,
    *,
    expected: Collection[str],
    to: Status,
    error_code: str | None = None,
    detail: str | None = None,
    lease_expired_before: datetime | None = None,
    **fields: Any,
) -> Event | None:
    """`transition` inside the caller's transaction (e.g. with the result rows)."""
    change = _Change(attempt_id, expected, to, error_code, detail, lease_expired_before, fields)
    if tx.dialect == "postgresql":
        seq = await tx.fetchval(change.postgres("id, seq", select="seq"), *change.args)
    else:
        row = await _sqlite_change(tx, change, "seq")
        seq = None if row is None else row["seq"]
    return None if seq is None else change.event(seq)


class _Change:
    """One conditional status change as SQL: the attempt's UPDATE and, on PostgreSQL, its event
    row in the same statement (other writes can be chained on as CTEs reading `moved`)."""

    def __init__(
        self,
        attempt_id: str,
        expected: Collection[str],
        to: Status,
        error_code: str | None,
        detail: str | None,
        lease_expired_before: datetime | None,
        fields: dict[str, Any],
    ) -> None:
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ValueError(f"not attempt fields: {sorted(unknown)}")
        self.attempt_id, self.to, self.error_code, self.detail = attempt_id, to, error_code, detail
        self.now = now = utcnow()
        if to in TERMINAL:
            fields.setdefault("finished_at", now)
            fields.setdefault("lease_owner", None)
            fields.setdefault("lease_expires_at", None)
            fields.setdefault("error_code", error_code)
            fields.setdefault("error_detail", detail)
        args: list[Any] = [attempt_id, to.value]
        sets = ["status = $2", "seq = seq + 1"]
        for name, value in fields.items():
            if isinstance(value, Increment):
                sets.append(f"{name} = {name} + 1")
                continue
            args.append(value)
            sets.append(f"{name} = ${len(args)}")
        condition = ""
        if lease_expired_before is not None:
            args.append(lease_expired_before)
            condition = f" AND lease_expires_at < ${len(args)}"
        placeholders, items = _in_list(expected, len(args) + 1)
        self.update = (
            f"UPDATE attempts SET {', '.join(sets)} WHERE id = $1{condition} AND status IN {placeholders}"
        )
        self.update_args = len(args) + len(items)
        # The event's own values follow the update's; `extra` CTEs number theirs after these.
        self.args = [*args, *items, now, error_code, detail]

    def postgres(self, columns: str, *, select: str | None = None, extra: str = "") -> str:
        """One statement: the update (`moved`, returning `columns`, which must include id and
        seq), its event row, any `extra` CTEs (`, name AS (…)` reading `moved`, placeholders
        numbered after `args`'), then `SELECT {select or columns} FROM moved`."""
        n = self.update_args
        return f"""WITH moved AS ({self.update} RETURNING {columns}),
                       e AS (INSERT INTO attempt_events (attempt_id, seq, status, at, error_code, detail)
                             SELECT id, seq, $2, ${n + 1}::timestamptz, ${n + 2}::text, ${n + 3}::text
                             FROM moved){extra}
                  SELECT {select or columns} FROM moved"""

    def event(self, seq: int) -> Event:
        return Event(
            id=self.attempt_id,
            seq=seq,
            status=self.to.value,
            at=self.now,
            error_code=self.error_code,
            detail=self.detail,
        )


async def _sqlite_change(tx: Executor, change: _Change, columns: str) -> Row | None:
    """SQLite's way: the UPDATE (returning `columns`, seq among them), then the event row; the
    caller holds the transaction."""
    row = await tx.fetchrow(f"{change.update} RETURNING {columns}", *change.args[: change.update_args])
    if row is None:
        return None
    await tx.execute(
        """INSERT INTO attempt_events (attempt_id, seq, status, at, error_code, detail)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        change.attempt_id,
        row["seq"],
        change.to.value,
        change.now,
        change.error_code,
        change.detail,
    )
    return row


async def claim(db: Database, attempt_id: str, *, owner: str, lease_s: float) -> Event | None:
    """queued → generating, taking the lease. None when someone else already has it."""
    claimed = await take(db, attempt_id, owner=owner, lease_s=lease_s)
    return None if claimed is None else claimed[0]


class Taken(NamedTuple):
    event: Event
    attempt: Attempt
    examples: list[knowledge.Example]  # the data source's knowledge base, read with the claim


_EXAMPLES = msgspec.json.Decoder(list[knowledge.Example])
# The claimed attempt's knowledge examples as a JSON array, in the claim's own statement: read
# after the claim like a separate query would, without its round trip.
_EXAMPLES_SQL = f"""(SELECT coalesce(json_agg(k ORDER BY k.id), '[]')::text
                     FROM (SELECT {", ".join(knowledge.Example.__struct_fields__)} FROM knowledge_examples
                           WHERE data_source = moved.data_source) AS k) AS examples"""


async def take(db: Database, attempt_id: str, *, owner: str, lease_s: float) -> Taken | None:
    """`claim`, also giving back what the worker reads next: the attempt as it now is and its
    data source's knowledge examples (one round trip on PostgreSQL)."""
    now = utcnow()
    change = _Change(
        attempt_id,
        {Status.QUEUED},
        Status.GENERATING,
        None,
        None,
        None,
        {
            "lease_owner": owner,
            "lease_expires_at": now + timedelta(seconds=lease_s),
            "started_at": now,
            "tries": INCREMENT,
        },
    )
    if db.dialect == "postgresql":  # one statement: atomic on its own
        row = await db.fetchrow(
            change.postgres(_COLUMNS, select=f"{_COLUMNS}, {_EXAMPLES_SQL}"), *change.args
        )
        if row is None:
            return None
        attempt = _attempt(row)
        examples = _EXAMPLES.decode(row["examples"])
    else:
        async with db.transaction() as tx:
            row = await _sqlite_change(tx, change, _COLUMNS)
            if row is None:
                return None
            attempt = _attempt(row)
            examples = await knowledge.for_data_source(tx, attempt.data_source)
    return Taken(change.event(attempt.seq), attempt, examples)


async def succeed(
    db: Database,
    attempt_id: str,
    *,
    expected: Collection[str],
    result: results.NewResult,
    **fields: Any,
) -> Event | None:
    """→ succeeded together with its result rows, atomically; None (nothing written) when the
    attempt is no longer in one of `expected`. On PostgreSQL one statement: one round trip."""
    change = _Change(attempt_id, expected, Status.SUCCEEDED, None, None, None, fields)
    if db.dialect == "postgresql":
        extra, extra_args = results.postgres_store_ctes(len(change.args) + 1, result, change.now)
        seq = await db.fetchval(
            change.postgres("id, seq", select="seq", extra=extra), *change.args, *extra_args
        )
    else:
        async with db.transaction() as tx:
            row = await _sqlite_change(tx, change, "seq")
            if row is None:
                return None
            seq = row["seq"]
            await results.store(
                tx,
                attempt_id,
                columns=result.columns,
                rows=result.rows,
                truncated=result.truncated,
                byte_size=result.byte_size,
            )
    return None if seq is None else change.event(seq)


async def renew_lease(db: Executor, attempt_id: str, *, owner: str, lease_s: float) -> bool | None:
    """Extend the lease. Returns the attempt's cancel flag, or None when the lease is no longer ours."""
    placeholders, items = _in_list(RUNNING, 4)
    row = await db.fetchrow(
        f"""UPDATE attempts SET lease_expires_at = $3
            WHERE id = $1 AND lease_owner = $2 AND status IN {placeholders}
            RETURNING cancel_requested""",
        attempt_id,
        owner,
        utcnow() + timedelta(seconds=lease_s),
        *items,
    )
    return None if row is None else bool(row["cancel_requested"])


async def request_cancel(db: Executor, attempt_id: str) -> None:
    await db.execute("UPDATE attempts SET cancel_requested = TRUE WHERE id = $1", attempt_id)


async def events_after(db: Executor, attempt_id: str, after_seq: int) -> list[Event]:
    rows = await db.fetch(
        """SELECT attempt_id, seq, status, at, error_code, detail FROM attempt_events
           WHERE attempt_id = $1 AND seq > $2 ORDER BY seq""",
        attempt_id,
        after_seq,
    )
    return [_event(r) for r in rows]


async def delete(db: Executor, attempt_id: str) -> bool:
    return await db.execute("DELETE FROM attempts WHERE id = $1", attempt_id) > 0


async def undispatched(
    db: Executor, *, older_than: datetime, redispatch_before: datetime | None = None, limit: int = 500
) -> list[str]:
    """Queued attempts whose message never reached the broker, or reached it before
    `redispatch_before` and may have been lost (a broker restart without persistence, an
    embedded-mode restart)."""
    rows = await db.fetch(
        """SELECT id FROM attempts
           WHERE status = 'queued' AND created_at < $1
             AND (dispatched_at IS NULL OR dispatched_at < $2)
           ORDER BY created_at LIMIT $3""",
        older_than,
        redispatch_before or older_than - timedelta(minutes=5),
        limit,
    )
    return [r["id"] for r in rows]


async def expired_leases(db: Executor, *, now: datetime, limit: int = 100) -> list[tuple[str, int]]:
    placeholders, items = _in_list(RUNNING, 3)
    rows = await db.fetch(
        f"""SELECT id, tries FROM attempts
            WHERE lease_expires_at < $1 AND status IN {placeholders}
            ORDER BY lease_expires_at LIMIT $2""",
        now,
        limit,
        *items,
    )
    return [(r["id"], r["tries"]) for r in rows]


async def cancel_queued(db: Database, attempt_id: str) -> Event | None:
    return await transition(
        db,
        attempt_id,
        expected={Status.QUEUED},
        to=Status.CANCELLED,
        error_code="CANCELLED",
        detail="cancelled by the user",
    )


async def counts_by_terminal_status(db: Executor) -> dict[tuple[str, str], int]:
    placeholders, items = _in_list(TERMINAL, 1)
    rows = await db.fetch(
        f"""SELECT status, COALESCE(error_code, '') AS error_code, count(*) AS n FROM attempts
            WHERE status IN {placeholders} GROUP BY status, COALESCE(error_code, '')""",
        *items,
    )
    return {(r["status"], r["error_code"]): int(r["n"]) for r in rows}
