"""What both executors produce: the result set and the caps that bound it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from shared.results.values import Column

MAX_DETAIL_CHARS = 2000
_MAX_BATCH_ROWS = 1000
_FIRST_BATCH_ROWS = 50


class ResultSet(msgspec.Struct):
    columns: list[Column]
    rows: list[list[object]]  # JSON values (SPEC "Result values")
    truncated: bool  # the row cap or the byte cap cut the result
    byte_size: int  # len(msgspec.json.encode(rows))


class ExecutionLimits(msgspec.Struct, frozen=True):
    statement_timeout_s: float  # SQLAGENT_STATEMENT_TIMEOUT_S
    row_cap: int  # SQLAGENT_ROW_CAP
    max_bytes: int  # SQLAGENT_RESULT_MAX_BYTES
    lock_timeout_s: float = 1.0  # PostgreSQL: give up quickly behind a DDL lock


# --- rows, caps and sizes (both dialects) ----------------------------------------------------

_encode = msgspec.json.Encoder().encode


class RowCollector:
    """Converts rows to JSON values and stops at row_cap rows or max_bytes of encoded JSON.

    `byte_size` is always the length of the JSON array of the kept rows; a row that would cross
    the byte cap is not kept."""

    def __init__(self, limits: ExecutionLimits, converters: Sequence[Callable[[Any], object] | None]):
        self._row_cap = max(0, limits.row_cap)
        self._max_bytes = limits.max_bytes
        self._converters = list(converters)
        self._identity = all(c is None for c in self._converters)
        self.rows: list[list[object]] = []
        self.byte_size = 2  # "[]"
        self.truncated = False
        self.done = False

    def next_batch_size(self) -> int:
        """Rows worth asking for next: never past row_cap + 1, and about the remaining byte
        budget's worth at the average row size seen so far."""
        wanted = self._row_cap + 1 - len(self.rows)
        if self.rows:
            average = max(1, (self.byte_size - 2) // len(self.rows))
            by_bytes = (self._max_bytes - self.byte_size) // average + 1
            return max(1, min(wanted, by_bytes, _MAX_BATCH_ROWS))
        return max(1, min(wanted, _FIRST_BATCH_ROWS))

    def add(self, raw_rows: Iterable[Sequence[Any]]) -> None:
        for raw in raw_rows:
            if len(self.rows) >= self._row_cap:
                self.truncated = self.done = True
                return
            if self._identity:
                row = list(raw)
            else:
                row = [
                    v if c is None or v is None else c(v) for c, v in zip(self._converters, raw, strict=True)
                ]
            size = len(_encode(row)) + (1 if self.rows else 0)
            if self.byte_size + size > self._max_bytes:
                self.truncated = self.done = True
                return
            self.rows.append(row)
            self.byte_size += size

    def finish(self) -> None:
        self.done = True
