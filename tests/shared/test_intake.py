"""The API's group-commit intake of new attempts, on both app databases."""

from __future__ import annotations

import asyncio

import pytest

from shared.attempts import repository as attempts
from shared.attempts.intake import Intake, NewAttempt, insert_many
from shared.attempts.models import Attempt
from shared.db.database import Database
from shared.users import repository as users


async def make_user(db: Database) -> int:
    return (await users.create_user(db, username="alice", password_hash="$argon2id$x", role="user")).id


async def test_rows_built_without_reading_back_equal_the_stored_rows(app_db: Database) -> None:
    user_id = await make_user(app_db)
    made = await insert_many(
        app_db,
        [NewAttempt(user_id=user_id, question=f"q{i}", data_source="default") for i in range(3)],
    )
    assert len({a.id for a in made}) == 3
    for attempt in made:
        stored = await attempts.get(app_db, attempt.id)
        assert stored == attempt  # every column the INSERT leaves to its default, as the API answers it
        events = await attempts.events_after(app_db, attempt.id, 0)
        assert [(e.seq, e.status, e.at) for e in events] == [(1, "queued", attempt.created_at)]


async def test_concurrent_submits_share_statements_and_each_gets_its_own_row(app_db: Database) -> None:
    user_id = await make_user(app_db)
    committed: list[list[str]] = []
    intake = Intake(app_db, lambda rows: committed.append([a.id for a, _ in rows]))
    intake.start()
    try:
        made = await asyncio.gather(
            *(
                intake.submit(
                    NewAttempt(user_id=user_id, question=f"q{i}", data_source="default", request_id=f"r{i}")
                )
                for i in range(50)
            )
        )
    finally:
        await intake.close()
    assert [a.question for a in made] == [f"q{i}" for i in range(50)]
    assert sorted(i for batch in committed for i in batch) == sorted(a.id for a in made)
    assert len(committed) < 50  # they were batched: fewer statements than submits
    assert await app_db.fetchval("SELECT count(*) FROM attempts") == 50
    assert await app_db.fetchval("SELECT count(*) FROM attempt_events") == 50


async def test_a_failed_statement_fails_every_request_of_its_batch_and_writes_nothing(
    app_db: Database,
) -> None:
    user_id = await make_user(app_db)
    handed: list[Attempt] = []
    intake = Intake(app_db, lambda rows: handed.extend(a for a, _ in rows))
    intake.start()
    try:
        # A user that does not exist violates the foreign key: the whole statement is refused.
        outcomes = await asyncio.gather(
            intake.submit(NewAttempt(user_id=user_id, question="fine", data_source="default")),
            intake.submit(NewAttempt(user_id=999_999, question="bad", data_source="default")),
            return_exceptions=True,
        )
        later = await intake.submit(NewAttempt(user_id=user_id, question="later", data_source="default"))
    finally:
        await intake.close()
    # Batched together they fail together; alone, the good one succeeds. Either way nothing is
    # half written and the dispatcher only ever hears of committed rows.
    assert isinstance(outcomes[1], Exception)
    stored = {r["question"] for r in await app_db.fetch("SELECT question FROM attempts")}
    assert "bad" not in stored and later.question in stored
    assert {a.question for a in handed} == stored
    assert ("fine" in stored) == isinstance(outcomes[0], Attempt)


async def test_close_writes_what_was_queued_and_then_refuses(app_db: Database) -> None:
    user_id = await make_user(app_db)
    intake = Intake(app_db, lambda rows: None)
    intake.start()
    pending = [
        asyncio.create_task(
            intake.submit(NewAttempt(user_id=user_id, question=f"q{i}", data_source="default"))
        )
        for i in range(5)
    ]
    await asyncio.sleep(0)
    await intake.close()
    assert len(await asyncio.gather(*pending)) == 5
    with pytest.raises(RuntimeError):
        await intake.submit(NewAttempt(user_id=user_id, question="too late", data_source="default"))
