"""Execution-accuracy comparison: columns, duplicates, order, value normalisation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.evaldata.compare import ResultTable, asks_for_order, compare, normalize_value, values_equal


def table(columns: str, *rows: Any) -> ResultTable:
    return ResultTable(columns=columns.split(), rows=[list(r) for r in rows])


def match(gold: ResultTable, result: ResultTable, *, ordered: bool = False) -> bool:
    return compare(gold, result, ordered=ordered).match


# --- columns ---------------------------------------------------------------------------------


def test_exact_match() -> None:
    gold = table("name n", ("a", 1), ("b", 2))
    assert match(gold, table("name n", ("a", 1), ("b", 2)))


def test_column_order_and_name_case_do_not_matter() -> None:
    gold = table("name n", ("a", 1), ("b", 2))
    assert match(gold, table("N NAME", (1, "a"), (2, "b")))


def test_gold_columns_may_be_a_subset_of_the_result() -> None:
    gold = table("name", ("a",), ("b",))
    assert match(gold, table("id name extra", (1, "a", True), (2, "b", False)))


def test_a_missing_gold_column_is_wrong() -> None:
    gold = table("name n", ("a", 1), ("b", 2))
    verdict = compare(gold, table("name", ("a",), ("b",)), ordered=False)
    assert not verdict.match and "expected 2 columns" in verdict.reason


def test_aliases_differing_from_the_gold_match_by_values() -> None:
    gold = table("author total_citations", ("x", 10), ("y", 3))
    assert match(gold, table("name citation_count", ("x", 10), ("y", 3)))


def test_values_must_line_up_row_by_row_not_just_per_column() -> None:
    gold = table("name n", ("a", 1), ("b", 2))
    verdict = compare(gold, table("name n", ("a", 2), ("b", 1)), ordered=False)
    assert not verdict.match


def test_same_named_column_is_preferred_but_another_may_match() -> None:
    # Both result columns hold {1, 2}; only `y` pairs with the names as the gold does.
    gold = table("name x", ("a", 1), ("b", 2))
    assert match(gold, table("name x y", ("a", 2, 1), ("b", 1, 2)))


def test_each_result_column_is_used_once() -> None:
    gold = table("a b", (1, 1), (2, 2))
    assert not match(gold, table("a", (1,), (2,)))
    assert match(gold, table("a c", (1, 1), (2, 2)))


def test_no_result_column_with_the_gold_values() -> None:
    verdict = compare(table("n", (5,)), table("n", (6,)), ordered=False)
    assert not verdict.match and "gold column 'n'" in verdict.reason


# --- rows ------------------------------------------------------------------------------------


def test_duplicate_rows_are_dropped_on_both_sides() -> None:
    gold = table("name", ("a",), ("a",), ("b",))
    assert match(gold, table("name", ("a",), ("b",)))
    assert match(table("name", ("a",), ("b",)), table("name", ("b",), ("a",), ("b",)))


def test_projection_duplicates_collapse() -> None:
    # A DISTINCT gold vs a result that also lists ids: the projected names are the same set.
    gold = table("name", ("a",), ("b",))
    assert match(gold, table("name id", ("a", 1), ("a", 2), ("b", 3)))


def test_extra_or_missing_rows_are_wrong() -> None:
    gold = table("n", (1,), (2,))
    verdict = compare(gold, table("n", (1,), (2,), (3,)), ordered=False)
    assert not verdict.match
    assert not match(gold, table("n", (1,)))


def test_row_order_is_ignored_unless_ordered() -> None:
    gold = table("name n", ("a", 1), ("b", 2))
    result = table("name n", ("b", 2), ("a", 1))
    assert match(gold, result)
    verdict = compare(gold, result, ordered=True)
    assert not verdict.match and verdict.reason == "the right rows in another order"
    assert match(gold, table("name n", ("a", 1), ("b", 2)), ordered=True)


def test_ordered_comparison_with_a_superset_of_columns() -> None:
    gold = table("name", ("b",), ("a",))
    assert match(gold, table("id name", (2, "b"), (1, "a")), ordered=True)
    assert not match(gold, table("id name", (1, "a"), (2, "b")), ordered=True)


def test_empty_gold() -> None:
    assert match(table("n"), table("x y"))
    verdict = compare(table("n"), table("n", (1,)), ordered=False)
    assert not verdict.match and verdict.reason == "expected no rows, got 1"
    assert not match(table("n", (1,)), table("n"))


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, "1"),
        (1, 1.0),
        ("1.50", 1.5),
        (Decimal("2.0"), 2),
        ("33.3333333333333333", 33.333333333333336),  # numeric avg vs float8 avg
        (4.1, 4.099999904632568),  # float4's shortest form vs its float8 expansion
        (0.30000000000000004, "0.3"),
        (True, 1),
        (False, 0),
        ("2023-01-01", "2023-01-01T00:00:00"),  # date_trunc gives a timestamp, ::date a date
        ("2023-01-01T10:00:00+02:00", "2023-01-01T08:00:00"),
        ("2023-01-01T10:00:00Z", "2023-01-01T10:00:00+00:00"),
        ("2023-01-01 10:00:00", "2023-01-01T10:00:00"),
        ("abc  ", "abc"),  # char(n) padding
        (None, None),
        ([1, "2"], [1.0, 2]),
        ({"a": 1, "b": [2]}, {"b": [2.0], "a": "1"}),
    ],
)
def test_equal_values(a: Any, b: Any) -> None:
    assert values_equal(normalize_value(a), normalize_value(b))
    assert match(table("v", (a,)), table("v", (b,)))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 2),
        (1000000, 1000001),  # integers are exact, however large
        (12345678901234567, 12345678901234568),
        (1.5, 1.6),
        (33.33, 33.333333),  # rounded to 2 places is a different answer
        ("abc", "ABC"),
        (" abc", "abc"),
        (None, 0),
        (None, ""),
        ("2023-01-01", "2023-01-02"),
        ("2023-01-01T10:00:00", "2023-01-01"),
        ("1", "one"),
        ([1, 2], [2, 1]),
        ({"a": 1}, {"a": 2}),
        ("NaN", 0),
    ],
)
def test_different_values(a: Any, b: Any) -> None:
    assert not values_equal(normalize_value(a), normalize_value(b))
    assert not match(table("v", (a,)), table("v", (b,)))


def test_non_finite_and_odd_values_normalise_without_errors() -> None:
    values = [
        float("nan"),
        float("inf"),
        "NaN",
        "Infinity",
        "-infinity",
        "P1DT2H",
        "1e5",
        ".5",
        b"\x00",
        object,
    ]
    keys = [normalize_value(v) for v in values]
    assert sorted(keys)  # comparable among themselves
    assert normalize_value(float("inf")) == normalize_value("Infinity")
    assert normalize_value("1e5") == normalize_value(100000)
    assert normalize_value(".5") == normalize_value(0.5)


def test_mixed_kinds_in_one_column_sort_and_compare() -> None:
    gold = table("v", (None,), (1,), ("a",), ("2023-01-01",), ([1],))
    assert match(gold, table("v", ([1],), ("a",), (None,), ("2023-01-01",), ("1",)))


def test_tolerance_survives_sorting_among_other_rows() -> None:
    gold = table("g n", ("a", "0.333333333333"), ("b", 2), ("c", "10.5"))
    assert match(gold, table("g n", ("c", 10.5), ("a", 1 / 3), ("b", 2.0)))


# --- when order counts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "category", "ordered"),
    [
        ("Which authors?", "order_by", True),
        ("Which authors?", "ORDER_BY ", True),
        ("Which authors?", "group_by", False),
        ("How many, ordered by count descending?", "table_join", True),
        ("Order the results by last name.", "instruct", True),
        ("Sorted by the number of meals", "group_by", True),
        ("Arrange them alphabetically", "", True),
        ("List them in ascending order of id", "", True),
        ("What are the top 5 countries?", "basic_group_order_limit", False),
        ("Which city has the highest-rated restaurant?", "instruct", False),
        ("How many orders were placed?", "", False),
        ("Who sorts the mail?", "", False),
    ],
)
def test_asks_for_order(question: str, category: str, ordered: bool) -> None:
    assert asks_for_order(question, category) is ordered
