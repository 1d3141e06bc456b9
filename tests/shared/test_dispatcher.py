"""The API's dispatcher and the outbox column: what `dispatched_at` says after a publish
succeeded or failed, on both app databases, with a real Redis and a dead one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio as aioredis

from shared.attempts import repository as attempts
from shared.attempts.intake import NewAttempt, insert_many, mark_undispatched
from shared.db.database import Database, utcnow
from shared.tasks import QUEUE, Dispatcher, Publisher
from shared.users import repository as users

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


async def fixture_rows(db: Database) -> tuple[list[str], str]:
    """Two rows from the intake (inserted marked) and one created the keyed way (unmarked)."""
    user = await users.create_user(db, username="alice", password_hash="$argon2id$x", role="user")
    made = await insert_many(
        db, [NewAttempt(user_id=user.id, question=q, data_source="default") for q in ("a", "b")]
    )
    keyed = await attempts.create(
        db, user_id=user.id, question="c", data_source="default", idempotency_key="k", request_hash="h"
    )
    return [a.id for a in made], keyed.id


async def dispatched_at(db: Database, attempt_id: str) -> object:
    return await db.fetchval("SELECT dispatched_at FROM attempts WHERE id = $1", attempt_id)


async def run(db: Database, broker: str, ids: list[str], keyed: str) -> None:
    publisher = Publisher(broker, attempt_deadline_s=60)
    dispatcher = Dispatcher(
        publisher,
        lambda batch: attempts.mark_dispatched(db, batch),
        lambda batch: mark_undispatched(db, batch),
    )
    dispatcher.start()
    for attempt_id in ids:
        dispatcher.dispatch(attempt_id, "req-1", marked=True)
    dispatcher.dispatch(keyed, "req-2")
    await asyncio.sleep(0.3)
    await dispatcher.close()
    await publisher.close()


async def test_a_published_batch_leaves_every_row_marked(app_db: Database, redis_url: str) -> None:
    ids, keyed = await fixture_rows(app_db)
    client = aioredis.Redis.from_url(redis_url)
    await client.delete(QUEUE)
    try:
        await run(app_db, redis_url, ids, keyed)
        assert await client.llen(QUEUE) == 3
    finally:
        await client.delete(QUEUE)
        await client.aclose()
    for attempt_id in [*ids, keyed]:
        assert await dispatched_at(app_db, attempt_id) is not None


async def test_a_failed_publish_leaves_every_row_for_the_sweeper(app_db: Database) -> None:
    ids, keyed = await fixture_rows(app_db)
    assert all([await dispatched_at(app_db, i) is not None for i in ids])  # inserted marked
    await run(app_db, DEAD_BROKER, ids, keyed)
    for attempt_id in [*ids, keyed]:
        assert await dispatched_at(app_db, attempt_id) is None
    pending = await attempts.undispatched(app_db, older_than=utcnow() + timedelta(seconds=1))
    assert sorted(pending) == sorted([*ids, keyed])
