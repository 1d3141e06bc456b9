"""Data sources: where generated SQL may run, and what it may see there."""

from __future__ import annotations

from typing import Literal

import msgspec

Dialect = Literal["postgresql", "sqlite"]


class DataSource(msgspec.Struct, frozen=True, kw_only=True):
    """One queryable database. `url` carries credentials: never serialise it to a client."""

    name: str
    url: str
    dialect: Dialect
    description: str = ""
    # None means every non-system schema the role can use (PostgreSQL only).
    schemas: tuple[str, ...] | None = None
    # "schema.table" on PostgreSQL, "table" on SQLite: never shown to the LLM nor queryable.
    exclude: tuple[str, ...] = ()
    sample_values: bool = False
