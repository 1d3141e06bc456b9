"""Submitting and reading attempts: what the query routes do, without HTTP."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import timedelta

from api.errors import DataSourceNotFound, InvalidState, QueryNotFound, RequestValidationError
from api.queries.schemas import MAX_QUESTION, AttemptCreate
from api.state import Services
from shared.attempts import repository as attempts
from shared.attempts.intake import NewAttempt
from shared.attempts.models import Attempt
from shared.attempts.status import TERMINAL, Status
from shared.db.database import is_unique_violation, utcnow
from shared.logs import current_request_id
from shared.users.repository import User

IDEMPOTENCY_WINDOW = timedelta(hours=24)


def _request_hash(question: str, data_source: str) -> str:
    return hashlib.sha256(f"{data_source}\x00{question}".encode()).hexdigest()


async def submit(svc: Services, user: User, data: AttemptCreate, idempotency_key: str | None) -> Attempt:
    question = data.question.strip()
    if not question:
        raise RequestValidationError(["body", "question"], "must not be empty")
    if len(question) > MAX_QUESTION:
        raise RequestValidationError(["body", "question"], f"must be at most {MAX_QUESTION} characters")
    if svc.settings.data_source(data.data_source) is None:
        raise DataSourceNotFound(
            f"No data source named {data.data_source!r}; GET /api/data-sources lists them"
        )

    if idempotency_key is None:
        # The common case shares one INSERT with concurrent submits (shared/attempts/intake.py),
        # which also hands the committed rows to the dispatcher.
        return await svc.intake.submit(
            NewAttempt(
                user_id=user.id,
                question=question,
                data_source=data.data_source,
                request_id=current_request_id(),
            )
        )
    request_hash = _request_hash(question, data.data_source)
    existing = await _replay(svc, user, idempotency_key, request_hash)
    if existing is not None:
        return existing
    try:
        attempt = await attempts.create(
            svc.db,
            user_id=user.id,
            question=question,
            data_source=data.data_source,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
    except Exception as exc:
        # Two requests with the same key raced: the other one created it.
        if is_unique_violation(exc):
            existing = await _replay(svc, user, idempotency_key, request_hash)
            if existing is not None:
                return existing
        raise
    # After the commit: a message for a row that does not exist would be worse than a late one.
    # No live announcement of `queued`: a stream subscribes first and then reads the event rows,
    # so it always sees the first event, and submit saves a round trip.
    svc.dispatcher.dispatch(attempt.id)
    return attempt


async def _replay(svc: Services, user: User, key: str, request_hash: str) -> Attempt | None:
    since = utcnow() - IDEMPOTENCY_WINDOW
    await attempts.expire_idempotency_key(svc.db, user.id, key, since)
    existing = await attempts.get_by_idempotency_key(svc.db, user.id, key, since)
    if existing is None:
        return None
    if existing.request_hash != request_hash:
        raise InvalidState("This Idempotency-Key was used with a different request")
    return existing


async def visible_attempt(svc: Services, user: User, attempt_id: str) -> Attempt:
    """The attempt if `user` may see it. Another user's attempt is 'not found', not 'forbidden',
    so ids leak nothing."""
    attempt = await attempts.get(svc.db, attempt_id)
    if attempt is None or (attempt.user_id != user.id and user.role != "admin"):
        raise QueryNotFound()
    return attempt


async def cancel(svc: Services, attempt: Attempt) -> Attempt:
    if attempt.status in TERMINAL:
        raise InvalidState(f"The attempt already ended ({attempt.status})")
    event = await attempts.cancel_queued(svc.db, attempt.id) if attempt.status == Status.QUEUED else None
    if event is None:
        # Running: the worker holding the lease sees the flag at its next heartbeat and stops the
        # LLM call or the database statement.
        await attempts.request_cancel(svc.db, attempt.id)
    else:
        # Best effort: subscribers re-read the event rows.
        with contextlib.suppress(Exception):
            await svc.bus.publish(event)
    refreshed = await attempts.get(svc.db, attempt.id)
    if refreshed is None:
        raise QueryNotFound()
    return refreshed
