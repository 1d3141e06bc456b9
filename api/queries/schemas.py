from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from api.pagination import Pagination
from shared.attempts.models import Attempt

DataSourceName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
MAX_QUESTION = 5000


class AttemptCreate(msgspec.Struct, forbid_unknown_fields=True):
    # Checked again after trimming (1 to 5,000 characters); the raw bound only stops absurd bodies early.
    question: Annotated[str, msgspec.Meta(max_length=50_000)]
    data_source: DataSourceName = "default"


class Timings(msgspec.Struct):
    queue_ms: int | None
    llm_ms: int | None
    exec_ms: int | None
    total_ms: int | None


class AttemptRead(msgspec.Struct):
    id: str
    question: str
    data_source: str
    status: str
    sql: str | None
    explanation: str | None
    error_code: str | None
    error_detail: str | None
    row_count: int | None
    truncated: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: Timings
    rounds: int


def _ms(later: datetime | None, earlier: datetime | None) -> int | None:
    if later is None or earlier is None:
        return None
    return max(0, round((later - earlier).total_seconds() * 1000))


def attempt_read(a: Attempt) -> AttemptRead:
    return AttemptRead(
        id=a.id,
        question=a.question,
        data_source=a.data_source,
        status=a.status,
        sql=a.sql,
        explanation=a.explanation,
        error_code=a.error_code,
        error_detail=a.error_detail,
        row_count=a.row_count,
        truncated=a.truncated,
        created_at=a.created_at,
        started_at=a.started_at,
        finished_at=a.finished_at,
        timings=Timings(
            queue_ms=_ms(a.started_at, a.created_at),
            llm_ms=a.llm_ms,
            exec_ms=a.exec_ms,
            total_ms=_ms(a.finished_at, a.created_at),
        ),
        rounds=a.rounds,
    )


class ResultColumn(msgspec.Struct):
    name: str
    type: str


class ResultsPage(msgspec.Struct):
    columns: list[ResultColumn]
    rows: list[list[object]]
    truncated: bool
    pagination: Pagination
