"""Attempt records as read from the app database."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Attempt(msgspec.Struct, kw_only=True):
    id: str
    user_id: int
    question: str
    data_source: str
    status: str
    seq: int
    sql: str | None
    explanation: str | None
    error_code: str | None
    error_detail: str | None
    row_count: int | None
    truncated: bool
    rounds: int
    prompt_tokens: int
    completion_tokens: int
    llm_ms: int | None
    exec_ms: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dispatched_at: datetime | None
    tries: int
    cancel_requested: bool
    request_hash: str | None


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One status change, as stored and as sent on the SSE stream (SPEC "SSE")."""

    id: str
    seq: int
    status: str
    at: datetime
    error_code: str | None = None
    detail: str | None = None
