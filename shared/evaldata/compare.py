"""Execution accuracy: does a result answer the question as well as the gold query's result?

The rule (SPEC "`sqlagent eval`", after Defog's sql-eval):

* **Columns.** The result is right when its columns include the gold's: some one-to-one choice of
  result columns, projected, gives exactly the gold rows. An exact match is the case where
  nothing is left over. Names are compared case-insensitively and a same-named column is tried
  first; a model's aliases rarely equal the gold's (`total_citations` vs `citation_count`), so a
  gold column may also be matched by its values to a column of another name, as sql-eval does.
  Column order never matters.
* **Rows.** Duplicate rows are dropped (on both sides, after projecting). Row order counts only
  when `ordered` (see `asks_for_order`); it is then compared strictly, ties included, so a
  different order among equal sort keys counts as wrong — as in sql-eval.
* **Values** (the JSON values of SPEC "Result values" or plain Python values):
  - numbers, numeric strings ("1.50", as numeric columns arrive) and booleans (as 1/0) compare as
    numbers; two integers must be equal, otherwise a relative difference up to 1e-6 is allowed
    (numeric vs float8, float4's shortest form, summation order);
  - ISO dates and timestamps compare as instants: an offset is converted to UTC, and a timestamp
    at midnight equals its date (`date_trunc` gives timestamps, `::date` dates);
  - other strings compare exactly, except for trailing spaces (`char(n)` padding);
  - NULL equals only NULL; arrays and JSON objects compare element by element.
* **Empty gold.** When the gold query returns no rows, the result must return none either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

__all__ = ["ORDER_WORDS", "ResultTable", "asks_for_order", "compare", "normalize_value", "values_equal"]

REL_TOLERANCE = Decimal("1e-6")
MAX_ASSIGNMENTS = 20_000  # column matchings tried before giving up (only wide, odd results get here)

# Words that ask for an order (sql-eval's order|sort|arrange, plus the forms a question uses).
ORDER_WORDS = re.compile(
    r"\b(order|ordered|ordering|sort|sorted|sorting|arrange|arranged|ascending|descending)\b", re.I
)


def asks_for_order(question: str, category: str = "") -> bool:
    """Row order counts for the `order_by` category, or when the question says order, sort,
    arrange, ascending or descending. "Top 5" alone does not: the LIMIT already decides which rows."""
    return category.strip().lower() == "order_by" or bool(ORDER_WORDS.search(question))


class ResultTable(msgspec.Struct, frozen=True):
    columns: list[str]
    rows: list[list[Any]]


# --- values ----------------------------------------------------------------------------------

# A normalised value is a tuple whose first element ranks its kind, so rows sort without mixing
# kinds: (0,) NULL, (1, Decimal) number, (2, str) date/time, (3, str) text, (4, tuple) array,
# (5, tuple) object.
Key = tuple[Any, ...]

_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2}(:?\d{2})?)?)?$"
)


def _number(value: Decimal) -> Key:
    if not value.is_finite():
        return (3, str(value))
    return (1, value)


def _datetime_key(text: str) -> Key | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    if parsed.time() == time(0):
        return (2, parsed.date().isoformat())
    return (2, parsed.isoformat())


def normalize_value(value: Any) -> Key:
    """The comparable form of one value (see the module docstring)."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, Decimal(int(value)))
    if isinstance(value, int):
        return (1, Decimal(value))
    if isinstance(value, float):
        return _number(Decimal(repr(value))) if math.isfinite(value) else (3, _non_finite(value))
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, str):
        if _NUMBER.match(value):
            try:
                return _number(Decimal(value.strip()))
            except InvalidOperation:
                pass
        if _DATETIME.match(value):
            key = _datetime_key(value)
            if key is not None:
                return key
        return (3, value.rstrip(" "))
    if isinstance(value, datetime):
        return _datetime_key(value.isoformat()) or (3, str(value))
    if isinstance(value, date):
        return (2, value.isoformat())
    if isinstance(value, list | tuple):
        return (4, tuple(normalize_value(v) for v in value))
    if isinstance(value, dict):
        return (5, tuple(sorted((str(k), normalize_value(v)) for k, v in value.items())))
    return (3, str(value))


def _non_finite(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _numbers_equal(a: Decimal, b: Decimal) -> bool:
    if a == b:
        return True
    if a == a.to_integral_value() and b == b.to_integral_value():
        return False  # counts and ids: exact
    return abs(a - b) <= REL_TOLERANCE * max(abs(a), abs(b))


def values_equal(a: Key, b: Key) -> bool:
    """Equality of two normalised values, with the numeric tolerance."""
    if a[0] != b[0]:
        return False
    if a[0] == 1:
        return _numbers_equal(a[1], b[1])
    if a[0] == 4:
        return len(a[1]) == len(b[1]) and all(values_equal(x, y) for x, y in zip(a[1], b[1], strict=True))
    if a[0] == 5:
        return len(a[1]) == len(b[1]) and all(
            ka == kb and values_equal(va, vb) for (ka, va), (kb, vb) in zip(a[1], b[1], strict=True)
        )
    return a == b


def _rows_equal(a: Sequence[Key], b: Sequence[Key]) -> bool:
    return all(values_equal(x, y) for x, y in zip(a, b, strict=True))


def _dedup(rows: Iterable[tuple[Key, ...]]) -> list[tuple[Key, ...]]:
    # Exact: duplicates inside one result come from identical computations.
    return list(dict.fromkeys(rows))


def _same_rows(gold: list[tuple[Key, ...]], got: list[tuple[Key, ...]], ordered: bool) -> bool:
    if len(gold) != len(got):
        return False
    if not ordered:
        # Numbers sort by value, so values within the tolerance end up side by side.
        gold, got = sorted(gold), sorted(got)
    return all(_rows_equal(g, r) for g, r in zip(gold, got, strict=True))


def _column_values(rows: list[tuple[Key, ...]], index: int) -> list[Key]:
    return sorted(dict.fromkeys(row[index] for row in rows))


def _same_values(a: list[Key], b: list[Key]) -> bool:
    return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))


# --- tables ----------------------------------------------------------------------------------


class Comparison(msgspec.Struct, frozen=True):
    match: bool
    reason: str  # why not, for the report ("" when it matches)


def compare(gold: ResultTable, result: ResultTable, *, ordered: bool) -> Comparison:
    """Does `result` contain the gold answer (see the module docstring)?"""
    gold_rows = _dedup(tuple(normalize_value(v) for v in row) for row in gold.rows)
    result_rows = [tuple(normalize_value(v) for v in row) for row in result.rows]
    if not gold_rows:
        if result_rows:
            return Comparison(False, f"expected no rows, got {len(_dedup(result_rows))}")
        return Comparison(True, "")
    if len(result.columns) < len(gold.columns):
        return Comparison(
            False, f"expected {len(gold.columns)} columns ({_names(gold.columns)}), got {len(result.columns)}"
        )

    # Candidate result columns per gold column: the same set of values, same-named first.
    result_values = [_column_values(result_rows, j) for j in range(len(result.columns))]
    lowered = [name.lower() for name in result.columns]
    candidates: list[list[int]] = []
    for i, name in enumerate(gold.columns):
        values = _column_values(gold_rows, i)
        found = [j for j in range(len(result.columns)) if _same_values(values, result_values[j])]
        found.sort(key=lambda j: lowered[j] != name.lower())
        if not found:
            return Comparison(
                False,
                f"no result column holds the values of gold column {name!r} "
                f"({len(gold_rows)} distinct gold rows, {len(_dedup(result_rows))} in the result)",
            )
        candidates.append(found)

    tried = 0
    order = sorted(range(len(candidates)), key=lambda i: len(candidates[i]))  # fewest choices first
    chosen: dict[int, int] = {}
    mismatch = "the rows differ"

    def search(depth: int) -> bool:
        nonlocal tried, mismatch
        if depth == len(order):
            tried += 1
            columns = [chosen[i] for i in range(len(candidates))]
            projected = _dedup(tuple(row[j] for j in columns) for row in result_rows)
            if _same_rows(gold_rows, projected, ordered):
                return True
            if len(projected) != len(gold_rows):
                mismatch = f"expected {len(gold_rows)} distinct rows, got {len(projected)}"
            elif ordered and _same_rows(gold_rows, projected, ordered=False):
                mismatch = "the right rows in another order"
            return False
        i = order[depth]
        for j in candidates[i]:
            if j in chosen.values():
                continue
            chosen[i] = j
            if search(depth + 1):
                return True
            del chosen[i]
            if tried >= MAX_ASSIGNMENTS:
                return False
        return False

    if search(0):
        return Comparison(True, "")
    return Comparison(False, mismatch)


def _names(columns: Sequence[str]) -> str:
    return ", ".join(columns)
