"""Stored result rows: JSON chunks of CHUNK_ROWS rows, so serving any page reads at most two."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

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


async def store(
    tx: Executor,
    attempt_id: str,
    *,
    columns: Sequence[StoredColumn],
    rows: Sequence[Sequence[object]],
    truncated: bool,
    byte_size: int,
) -> None:
    """Write within the caller's transaction (the one that marks the attempt succeeded)."""
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
    for chunk, start in enumerate(range(0, len(rows), CHUNK_ROWS)):
        await tx.execute(
            "INSERT INTO result_chunks (attempt_id, chunk, rows) VALUES ($1, $2, $3)",
            attempt_id,
            chunk,
            _encoder.encode(rows[start : start + CHUNK_ROWS]),
        )


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
