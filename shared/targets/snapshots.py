"""Schema snapshots kept in the app database, newest per data source wins."""

from __future__ import annotations

import msgspec

from shared.db.database import Executor
from shared.targets.introspect import SchemaSnapshot

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SchemaSnapshot)


async def latest(db: Executor, data_source: str) -> SchemaSnapshot | None:
    row = await db.fetchrow(
        """SELECT snapshot FROM schema_snapshots WHERE data_source = $1
           ORDER BY taken_at DESC, id DESC LIMIT 1""",
        data_source,
    )
    return None if row is None else _decoder.decode(row["snapshot"])


async def save(db: Executor, snapshot: SchemaSnapshot) -> None:
    await db.execute(
        "INSERT INTO schema_snapshots (data_source, taken_at, snapshot) VALUES ($1, $2, $3)",
        snapshot.data_source,
        snapshot.taken_at,
        _encoder.encode(snapshot).decode(),
    )
    # Keep a short history for operators; older snapshots are noise.
    await db.execute(
        """DELETE FROM schema_snapshots WHERE data_source = $1 AND id NOT IN (
               SELECT id FROM schema_snapshots WHERE data_source = $1 ORDER BY taken_at DESC, id DESC LIMIT 5)""",
        snapshot.data_source,
    )
