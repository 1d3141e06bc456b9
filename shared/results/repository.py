"""Stored result rows: JSON chunks of CHUNK_ROWS rows, so serving any page reads at most two."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from shared.db.database import Executor, utcnow

CHUNK_ROWS = 1000

_encoder = msgspec.json.Encoder()
_rows_decoder = msgspec.json.Decoder(list[list[object]])


class StoredColumn(msgspec.Struct, frozen=True):
    name: str
    type: str


class StoredResult(msgspec.Struct, kw_only=True):
    columns: list[StoredColumn]
    row_count: int
    truncated: bool
    byte_size: int
    created_at: datetime


_columns_decoder = msgspec.json.Decoder(list[StoredColumn])


class NewResult(msgspec.Struct, frozen=True, kw_only=True):
    """Rows to store for an attempt."""

    columns: Sequence[StoredColumn]
    rows: Sequence[Sequence[object]]
    truncated: bool
    byte_size: int

    def chunks(self) -> list[bytes]:
        rows = self.rows
        return [
            _encoder.encode(rows[start : start + CHUNK_ROWS]) for start in range(0, len(rows), CHUNK_ROWS)
        ]


async def store(
    tx: Executor,
    attempt_id: str,
    *,
    columns: Sequence[StoredColumn],
    rows: Sequence[Sequence[object]],
    truncated: bool,
    byte_size: int,
) -> None:
    """Write within the caller's transaction (the one that marks the attempt succeeded), replacing
    whatever was stored for the attempt before."""
    result = NewResult(columns=columns, rows=rows, truncated=truncated, byte_size=byte_size)
    await tx.execute("DELETE FROM attempt_results WHERE attempt_id = $1", attempt_id)
    await tx.execute(
        """INSERT INTO attempt_results (attempt_id, columns, row_count, truncated, byte_size, chunk_rows,
                                        created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        attempt_id,
        _encoder.encode(list(columns)).decode(),
        len(rows),
        truncated,
        byte_size,
        CHUNK_ROWS,
        utcnow(),
    )
    for chunk, rows_json in enumerate(result.chunks()):
        await tx.execute(
            "INSERT INTO result_chunks (attempt_id, chunk, rows) VALUES ($1, $2, $3)",
            attempt_id,
            chunk,
            rows_json,
        )


def postgres_store_ctes(first: int, result: NewResult, created_at: datetime) -> tuple[str, list[Any]]:
    """`store` as CTEs for the PostgreSQL statement that moves the attempt (a CTE `moved` giving
    its `id`, or no row, and then nothing is stored): the status change and the rows in one
    round trip, atomic as one statement. Placeholders are numbered from `first`.

    One statement cannot delete a key and insert it again, so earlier results are replaced by
    upserts, and chunks beyond the new ones deleted."""
    chunks = result.chunks()
    p = [f"${first + i}" for i in range(8)]
    sql = f""",
        res AS (INSERT INTO attempt_results (attempt_id, columns, row_count, truncated, byte_size,
                                             chunk_rows, created_at)
                SELECT id, {p[0]}::text, {p[1]}::integer, {p[2]}::boolean, {p[3]}::bigint,
                       {p[4]}::integer, {p[5]}::timestamptz FROM moved
                ON CONFLICT (attempt_id) DO UPDATE SET
                    columns = EXCLUDED.columns, row_count = EXCLUDED.row_count,
                    truncated = EXCLUDED.truncated, byte_size = EXCLUDED.byte_size,
                    chunk_rows = EXCLUDED.chunk_rows, created_at = EXCLUDED.created_at
                RETURNING attempt_id),
        stale AS (DELETE FROM result_chunks
                  WHERE attempt_id IN (SELECT id FROM moved) AND chunk >= {p[6]}::integer),
        chunks AS (INSERT INTO result_chunks (attempt_id, chunk, rows)
                   SELECT res.attempt_id, c.n - 1, c.rows
                   FROM res, unnest({p[7]}::bytea[]) WITH ORDINALITY AS c(rows, n)
                   ON CONFLICT (attempt_id, chunk) DO UPDATE SET rows = EXCLUDED.rows)"""
    args = [
        _encoder.encode(list(result.columns)).decode(),
        len(result.rows),
        result.truncated,
        result.byte_size,
        CHUNK_ROWS,
        created_at,
        len(chunks),
        chunks,
    ]
    return sql, args


async def get_meta(db: Executor, attempt_id: str) -> StoredResult | None:
    row = await db.fetchrow(
        "SELECT columns, row_count, truncated, byte_size, created_at FROM attempt_results WHERE attempt_id = $1",
        attempt_id,
    )
    if row is None:
        return None
    return StoredResult(
        columns=_columns_decoder.decode(row["columns"]),
        row_count=row["row_count"],
        truncated=bool(row["truncated"]),
        byte_size=row["byte_size"],
        created_at=row["created_at"],
    )


async def rows_slice(db: Executor, attempt_id: str, offset: int, limit: int) -> list[list[object]]:
    if limit <= 0:
        return []
    first, last = offset // CHUNK_ROWS, (offset + limit - 1) // CHUNK_ROWS
    chunks = await db.fetch(
        "SELECT chunk, rows FROM result_chunks WHERE attempt_id = $1 AND chunk BETWEEN $2 AND $3 ORDER BY chunk",
        attempt_id,
        first,
        last,
    )
    rows: list[list[object]] = []
    for chunk in chunks:
        rows.extend(_rows_decoder.decode(chunk["rows"]))
    skip = offset - first * CHUNK_ROWS
    return rows[skip : skip + limit]


async def all_chunks(db: Executor, attempt_id: str) -> list[list[list[object]]]:
    chunks = await db.fetch("SELECT rows FROM result_chunks WHERE attempt_id = $1 ORDER BY chunk", attempt_id)
    return [_rows_decoder.decode(c["rows"]) for c in chunks]


async def purge_older_than(db: Executor, cutoff: datetime) -> int:
    return await db.execute("DELETE FROM attempt_results WHERE created_at < $1", cutoff)
