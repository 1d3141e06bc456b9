"""The worker's fewer-round-trip writes, on both app databases: claiming gives the attempt back,
and succeeding stores the rows in the same atomic step (one statement on PostgreSQL)."""

from __future__ import annotations

import pytest

from shared.attempts import repository as attempts
from shared.attempts.status import RUNNING, Status
from shared.db.database import Database
from shared.knowledge import repository as knowledge
from shared.results import repository as results
from shared.users import repository as users

COLUMNS = [results.StoredColumn("n", "int4"), results.StoredColumn("label", "text")]


async def _queued(db: Database) -> str:
    user = await users.create_user(db, username="w", password_hash="$argon2id$x", role="user")
    return (await attempts.create(db, user_id=user.id, question="How many?", data_source="default")).id


def _result(rows: list[list[object]], truncated: bool = False) -> results.NewResult:
    return results.NewResult(columns=COLUMNS, rows=rows, truncated=truncated, byte_size=len(str(rows)))


async def test_take_gives_back_the_claimed_attempt_once(app_db: Database) -> None:
    attempt_id = await _queued(app_db)
    taken = await attempts.take(app_db, attempt_id, owner="w1", lease_s=30)
    assert taken is not None
    event, attempt, examples = taken
    assert examples == []
    assert (event.id, event.seq, event.status) == (attempt_id, 2, "generating")
    assert attempt == await attempts.get(app_db, attempt_id)
    assert attempt.status == "generating" and attempt.tries == 1 and attempt.started_at is not None
    assert await attempts.events_after(app_db, attempt_id, 1) == [event]
    assert await attempts.take(app_db, attempt_id, owner="w2", lease_s=30) is None  # redelivered
    assert await attempts.claim(app_db, attempt_id, owner="w2", lease_s=30) is None
    assert (await attempts.get(app_db, attempt_id)).seq == 2  # type: ignore[union-attr]


async def test_take_reads_the_knowledge_examples_of_the_attempts_data_source(app_db: Database) -> None:
    first = await knowledge.create(
        app_db, question="How many?", sql="SELECT 1", data_source="default", notes=None, created_by=None
    )
    await knowledge.create(
        app_db, question="Other", sql="SELECT 2", data_source="sales", notes=None, created_by=None
    )
    attempt_id = await _queued(app_db)
    # Added after the attempt was queued, just before it is claimed: the claim must see it.
    second = await knowledge.create(
        app_db, question='Quoted "q" ü', sql="SELECT 3", data_source="default", notes="n", created_by=None
    )
    taken = await attempts.take(app_db, attempt_id, owner="w1", lease_s=30)
    assert taken is not None
    assert taken.examples == [first, second] == await knowledge.for_data_source(app_db, "default")


async def test_succeed_moves_and_stores_together(app_db: Database) -> None:
    attempt_id = await _queued(app_db)
    assert await attempts.claim(app_db, attempt_id, owner="w", lease_s=30)
    rows: list[list[object]] = [[i, f"row {i}"] for i in range(2500)]
    event = await attempts.succeed(
        app_db,
        attempt_id,
        expected={Status.GENERATING},
        result=_result(rows, truncated=True),
        row_count=len(rows),
        truncated=True,
        rounds=1,
        exec_ms=3,
    )
    assert event is not None and (event.seq, event.status) == (3, "succeeded")
    assert await attempts.events_after(app_db, attempt_id, 2) == [event]
    attempt = await attempts.get(app_db, attempt_id)
    assert attempt is not None and attempt.status == "succeeded" and attempt.row_count == 2500
    assert attempt.finished_at is not None and attempt.rounds == 1 and attempt.exec_ms == 3
    lease = await app_db.fetchrow(
        "SELECT lease_owner, lease_expires_at FROM attempts WHERE id = $1", attempt_id
    )
    assert lease is not None and lease["lease_owner"] is None and lease["lease_expires_at"] is None
    meta = await results.get_meta(app_db, attempt_id)
    assert meta is not None and meta.row_count == 2500 and meta.truncated and meta.columns == COLUMNS
    assert meta.byte_size == len(str(rows))
    assert await results.rows_slice(app_db, attempt_id, 990, 20) == rows[990:1010]
    assert [len(c) for c in await results.all_chunks(app_db, attempt_id)] == [1000, 1000, 500]


async def test_succeed_after_someone_else_moved_it_writes_nothing(app_db: Database) -> None:
    attempt_id = await _queued(app_db)
    assert await attempts.claim(app_db, attempt_id, owner="w", lease_s=30)
    cancelled = await attempts.transition(
        app_db, attempt_id, expected=RUNNING, to=Status.CANCELLED, error_code="CANCELLED", detail="user"
    )
    assert cancelled is not None
    moved = await attempts.succeed(
        app_db, attempt_id, expected={Status.GENERATING}, result=_result([[1, "a"]]), row_count=1
    )
    assert moved is None
    assert (await attempts.get(app_db, attempt_id)).status == "cancelled"  # type: ignore[union-attr]
    assert await results.get_meta(app_db, attempt_id) is None
    assert await results.all_chunks(app_db, attempt_id) == []
    assert [e.status for e in await attempts.events_after(app_db, attempt_id, 0)] == [
        "queued",
        "generating",
        "cancelled",
    ]


async def test_succeed_replaces_rows_stored_earlier(app_db: Database) -> None:
    # Not reachable through the pipeline today (rows are only stored on the way to succeeded);
    # `store` always replaced, and the one-statement form must too.
    attempt_id = await _queued(app_db)
    assert await attempts.claim(app_db, attempt_id, owner="w", lease_s=30)
    async with app_db.transaction() as tx:
        await results.store(
            tx, attempt_id, columns=COLUMNS[:1], rows=[[i] for i in range(2100)], truncated=True, byte_size=9
        )
    rows: list[list[object]] = [[7, "seven"], [8, "eight"]]
    assert await attempts.succeed(app_db, attempt_id, expected={Status.GENERATING}, result=_result(rows))
    meta = await results.get_meta(app_db, attempt_id)
    assert meta is not None and meta.row_count == 2 and not meta.truncated and meta.columns == COLUMNS
    assert await results.all_chunks(app_db, attempt_id) == [rows]


async def test_succeed_with_no_rows(app_db: Database) -> None:
    attempt_id = await _queued(app_db)
    assert await attempts.claim(app_db, attempt_id, owner="w", lease_s=30)
    assert await attempts.succeed(app_db, attempt_id, expected={Status.GENERATING}, result=_result([]))
    meta = await results.get_meta(app_db, attempt_id)
    assert meta is not None and meta.row_count == 0
    assert await results.rows_slice(app_db, attempt_id, 0, 10) == []


async def test_succeed_refuses_unknown_fields(app_db: Database) -> None:
    with pytest.raises(ValueError, match="not attempt fields"):
        await attempts.succeed(app_db, "x", expected={Status.EXECUTING}, result=_result([]), nope=1)
