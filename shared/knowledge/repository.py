"""Verified question/SQL examples (the knowledge base)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from shared.db.database import Executor, Row, utcnow


class Example(msgspec.Struct, kw_only=True):
    id: int
    question: str
    sql: str
    data_source: str
    notes: str | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = "id, question, sql, data_source, notes, created_at, updated_at"


def _example(row: Row) -> Example:
    return Example(**{k: row[k] for k in Example.__struct_fields__})


async def create(
    db: Executor, *, question: str, sql: str, data_source: str, notes: str | None, created_by: int | None
) -> Example:
    now = utcnow()
    row = await db.fetchrow(
        f"""INSERT INTO knowledge_examples (question, sql, data_source, notes, created_by, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {_COLUMNS}""",
        question,
        sql,
        data_source,
        notes,
        created_by,
        now,
    )
    assert row is not None
    return _example(row)


async def get(db: Executor, example_id: int) -> Example | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM knowledge_examples WHERE id = $1", example_id)
    return None if row is None else _example(row)


async def update(
    db: Executor, example_id: int, *, question: str, sql: str, data_source: str, notes: str | None
) -> Example | None:
    row = await db.fetchrow(
        f"""UPDATE knowledge_examples SET question = $2, sql = $3, data_source = $4, notes = $5, updated_at = $6
            WHERE id = $1 RETURNING {_COLUMNS}""",
        example_id,
        question,
        sql,
        data_source,
        notes,
        utcnow(),
    )
    return None if row is None else _example(row)


async def delete(db: Executor, example_id: int) -> bool:
    return await db.execute("DELETE FROM knowledge_examples WHERE id = $1", example_id) > 0


async def page(
    db: Executor, *, data_source: str | None, page: int, page_size: int
) -> tuple[list[Example], int]:
    where, args = ("WHERE data_source = $1", [data_source]) if data_source else ("", [])
    total = await db.fetchval(f"SELECT count(*) FROM knowledge_examples {where}", *args)
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM knowledge_examples {where}
            ORDER BY id LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""",
        *args,
        page_size,
        (page - 1) * page_size,
    )
    return [_example(r) for r in rows], int(total)


async def for_data_source(db: Executor, data_source: str) -> list[Example]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM knowledge_examples WHERE data_source = $1 ORDER BY id", data_source
    )
    return [_example(r) for r in rows]


async def exists_for(db: Executor, data_source: str, question: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT count(*) FROM knowledge_examples WHERE data_source = $1 AND question = $2",
            data_source,
            question,
        )
    )
