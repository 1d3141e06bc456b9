"""The repository layer on both app databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.attempts import repository as attempts
from shared.attempts.status import RUNNING, Status
from shared.db.database import Database, utcnow
from shared.knowledge import repository as knowledge
from shared.results import repository as results
from shared.users import repository as users


async def make_user(db: Database, name: str = "alice", role: str = "user") -> users.User:
    return await users.create_user(db, username=name, password_hash="$argon2id$x", role=role)


async def test_attempt_round_trip_and_events(app_db: Database) -> None:
    user = await make_user(app_db)
    a = await attempts.create(app_db, user_id=user.id, question="How many?", data_source="default")
    assert a.status == "queued" and a.seq == 1 and a.created_at.tzinfo is not None
    assert a.truncated is False and a.cancel_requested is False

    assert await attempts.claim(app_db, a.id, owner="w1", lease_s=30) is not None
    assert await attempts.claim(app_db, a.id, owner="w2", lease_s=30) is None  # redelivery is harmless

    moved = await attempts.transition(
        app_db, a.id, expected={Status.GENERATING}, to=Status.VALIDATING, sql="SELECT 1"
    )
    assert moved is not None and moved.seq == 3
    # A stale precondition writes nothing.
    assert await attempts.transition(app_db, a.id, expected={Status.GENERATING}, to=Status.EXECUTING) is None

    done = await attempts.transition(
        app_db, a.id, expected=RUNNING, to=Status.FAILED, error_code="SQL_EXECUTION_ERROR", detail="boom"
    )
    assert done is not None
    got = await attempts.get(app_db, a.id)
    assert got is not None
    assert (got.status, got.error_code, got.error_detail, got.sql) == (
        "failed",
        "SQL_EXECUTION_ERROR",
        "boom",
        "SELECT 1",
    )
    assert got.finished_at is not None and got.started_at is not None
    events = await attempts.events_after(app_db, a.id, 0)
    assert [(e.seq, e.status) for e in events] == [
        (1, "queued"),
        (2, "generating"),
        (3, "validating"),
        (4, "failed"),
    ]
    assert [e.seq for e in await attempts.events_after(app_db, a.id, 2)] == [3, 4]


async def test_pagination_and_ownership(app_db: Database) -> None:
    alice, bob = await make_user(app_db, "alice"), await make_user(app_db, "bob")
    for i in range(5):
        await attempts.create(app_db, user_id=alice.id, question=f"q{i}", data_source="default")
    await attempts.create(app_db, user_id=bob.id, question="bob's", data_source="default")
    items, total = await attempts.page(app_db, user_id=alice.id, status=None, page=1, page_size=2)
    assert total == 5 and [a.question for a in items] == ["q4", "q3"]
    items, total = await attempts.page(app_db, user_id=alice.id, status=None, page=3, page_size=2)
    assert [a.question for a in items] == ["q0"]
    _, everyone = await attempts.page(app_db, user_id=None, status="queued", page=1, page_size=20)
    assert everyone == 6


async def test_leases_and_the_outbox(app_db: Database) -> None:
    user = await make_user(app_db)
    a = await attempts.create(app_db, user_id=user.id, question="q", data_source="default")
    soon = utcnow() + timedelta(seconds=5)
    assert await attempts.undispatched(app_db, older_than=soon) == [a.id]
    await attempts.mark_dispatched(app_db, [a.id])
    assert await attempts.undispatched(app_db, older_than=soon) == []

    await attempts.claim(app_db, a.id, owner="w1", lease_s=0.01)
    assert await attempts.renew_lease(app_db, a.id, owner="w2", lease_s=30) is None
    assert await attempts.renew_lease(app_db, a.id, owner="w1", lease_s=-1) is False
    expired = await attempts.expired_leases(app_db, now=utcnow())
    assert expired == [(a.id, 1)]
    await attempts.request_cancel(app_db, a.id)
    assert await attempts.renew_lease(app_db, a.id, owner="w1", lease_s=30) is True


async def test_idempotency_key_is_unique_per_user(app_db: Database) -> None:
    user = await make_user(app_db)
    a = await attempts.create(
        app_db, user_id=user.id, question="q", data_source="default", idempotency_key="k1", request_hash="h"
    )
    found = await attempts.get_by_idempotency_key(app_db, user.id, "k1", utcnow() - timedelta(hours=24))
    assert found is not None and found.id == a.id
    with pytest.raises(Exception) as info:
        await attempts.create(
            app_db, user_id=user.id, question="q", data_source="default", idempotency_key="k1"
        )
    from shared.db.database import is_unique_violation

    assert is_unique_violation(info.value)


async def test_results_chunks(app_db: Database) -> None:
    user = await make_user(app_db)
    a = await attempts.create(app_db, user_id=user.id, question="q", data_source="default")
    rows = [[i, f"row {i}", None] for i in range(2500)]
    cols = [
        results.StoredColumn("n", "int4"),
        results.StoredColumn("label", "text"),
        results.StoredColumn("x", "text"),
    ]
    async with app_db.transaction() as tx:
        await results.store(tx, a.id, columns=cols, rows=rows, truncated=True, byte_size=1234)
    meta = await results.get_meta(app_db, a.id)
    assert meta is not None and meta.row_count == 2500 and meta.truncated and meta.columns == cols
    assert await results.rows_slice(app_db, a.id, 990, 20) == rows[990:1010]
    assert await results.rows_slice(app_db, a.id, 2400, 1000) == rows[2400:]
    assert await results.rows_slice(app_db, a.id, 5000, 10) == []
    assert sum(len(c) for c in await results.all_chunks(app_db, a.id)) == 2500
    assert await attempts.delete(app_db, a.id)
    assert await results.get_meta(app_db, a.id) is None  # cascades


async def test_sessions_and_tokens(app_db: Database) -> None:
    user = await make_user(app_db)
    secret, _ = await users.create_session(app_db, user.id)
    cred = await users.session_credential(app_db, secret)
    assert cred is not None and cred.user.id == user.id and not cred.expired
    stored = await app_db.fetchval("SELECT token_hash FROM sessions")
    assert secret not in stored
    info, token = await users.create_token(app_db, user.id, "ci")
    assert (await users.find_token(app_db, users.digest(token)))[0].user.username == "alice"  # type: ignore[index]
    assert await users.revoke_token(app_db, user.id, info.id)
    assert await users.find_token(app_db, users.digest(token)) is None
    await users.update_user(app_db, user.id, role=None, active=False)
    assert await users.session_credential(app_db, secret) is None


async def test_knowledge_crud(app_db: Database) -> None:
    ex = await knowledge.create(
        app_db, question="How many?", sql="SELECT 1", data_source="default", notes=None, created_by=None
    )
    assert (await knowledge.get(app_db, ex.id)).sql == "SELECT 1"  # type: ignore[union-attr]
    updated = await knowledge.update(
        app_db, ex.id, question="How many?", sql="SELECT 2", data_source="default", notes="n"
    )
    assert updated is not None and updated.notes == "n"
    items, total = await knowledge.page(app_db, data_source="default", page=1, page_size=10)
    assert total == 1 and items[0].sql == "SELECT 2"
    assert await knowledge.delete(app_db, ex.id)
    assert await knowledge.get(app_db, ex.id) is None
