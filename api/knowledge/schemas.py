from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from api.queries.schemas import MAX_QUESTION, DataSourceName
from shared.knowledge.repository import Example

__all__ = ["MAX_NOTES", "MAX_QUESTION", "MAX_SQL", "KnowledgeRead", "KnowledgeWrite", "knowledge_read"]

MAX_SQL = 100_000  # the guard's own limit (shared.sqlguard)
MAX_NOTES = 10_000


class KnowledgeWrite(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST (create) and PUT (full replacement: omitted fields take their defaults).
    Surrounding whitespace is trimmed from question, sql and notes; blank notes are stored as null."""

    # question and sql are checked again after trimming; the raw bounds only stop absurd bodies early.
    question: Annotated[str, msgspec.Meta(max_length=50_000)]
    sql: Annotated[str, msgspec.Meta(max_length=2 * MAX_SQL)]
    data_source: DataSourceName = "default"
    notes: Annotated[str, msgspec.Meta(max_length=MAX_NOTES)] | None = None


class KnowledgeRead(msgspec.Struct):
    id: int
    question: str
    sql: str
    data_source: str
    notes: str | None
    created_at: datetime
    updated_at: datetime


def knowledge_read(example: Example) -> KnowledgeRead:
    return KnowledgeRead(
        id=example.id,
        question=example.question,
        sql=example.sql,
        data_source=example.data_source,
        notes=example.notes,
        created_at=example.created_at,
        updated_at=example.updated_at,
    )
