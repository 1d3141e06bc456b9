"""Failure classification and the report's numbers and rendering."""

from __future__ import annotations

import io

import msgspec
import pytest
from rich.console import Console

from shared.evaldata.report import Outcome, build_report, classify, print_report


@pytest.mark.parametrize(
    ("unanswerable", "status", "error_code", "sql", "rows_match", "reason"),
    [
        (False, "succeeded", None, "SELECT 1", True, None),
        (False, "succeeded", None, "SELECT 1", False, "wrong_rows"),
        (False, "succeeded", None, "SELECT 1", None, "other"),  # the gold query failed
        (False, "rejected", "SQL_REJECTED", "DELETE FROM t", None, "rejected"),
        (False, "failed", "SQL_EXECUTION_ERROR", "SELECT nope", None, "sql_error"),
        (False, "failed", "QUESTION_UNANSWERABLE", None, None, "unanswerable"),
        (False, "timed_out", "OPERATION_TIMEOUT", "SELECT 1", None, "timeout"),
        (False, "failed", "LLM_SERVICE_UNAVAILABLE", None, None, "llm_unavailable"),
        (False, "failed", "LLM_NOT_CONFIGURED", None, None, "llm_unavailable"),
        (False, "failed", "TARGET_UNAVAILABLE", "SELECT 1", None, "other"),
        (False, "failed", "INTERNAL_ERROR", None, None, "other"),
        (False, "cancelled", "CANCELLED", None, None, "other"),
        (True, "failed", "QUESTION_UNANSWERABLE", None, None, None),
        (True, "succeeded", None, "SELECT 'sorry' AS answer", None, "answered_unanswerable"),
        (True, "failed", "SQL_EXECUTION_ERROR", "SELECT nope", None, "answered_unanswerable"),
        (True, "rejected", "SQL_REJECTED", "DROP TABLE t", None, "answered_unanswerable"),
        (True, "failed", "LLM_SERVICE_UNAVAILABLE", None, None, "llm_unavailable"),
        (True, "timed_out", "OPERATION_TIMEOUT", None, None, "timeout"),
    ],
)
def test_classify(
    unanswerable: bool,
    status: str,
    error_code: str | None,
    sql: str | None,
    rows_match: bool | None,
    reason: str | None,
) -> None:
    got = classify(
        unanswerable=unanswerable, status=status, error_code=error_code, sql=sql, rows_match=rows_match
    )
    assert got == reason


def outcome(
    reason: str | None, *, db: str = "academic", category: str = "group_by", ms: float = 10
) -> Outcome:
    return Outcome(
        question=f"q {reason} {db} {ms}",
        data_source=db,
        category=category,
        status="succeeded" if reason in (None, "wrong_rows") else "failed",
        error_code=None,
        reason=reason,
        detail="" if reason is None else "why",
        latency_ms=ms,
        prompt_tokens=100,
        completion_tokens=7,
    )


def test_build_report_numbers() -> None:
    outcomes = [
        outcome(None, ms=10),
        outcome(None, category="order_by", ms=20),
        outcome("wrong_rows", db="yelp", ms=30),
        outcome("sql_error", db="yelp", category="order_by", ms=40),
        outcome(None, db="yelp", category="", ms=1000),
    ]
    report = build_report(outcomes)
    assert (report.total, report.correct, report.accuracy) == (5, 3, 0.6)
    assert report.by_database["academic"].accuracy == 1.0
    assert (report.by_database["yelp"].total, report.by_database["yelp"].correct) == (3, 1)
    assert set(report.by_category) == {"(none)", "group_by", "order_by"}
    assert report.by_category["order_by"].correct == 1
    assert report.reasons == {"sql_error": 1, "wrong_rows": 1}
    assert [f.reason for f in report.failures] == ["wrong_rows", "sql_error"]
    assert report.latency.p50_ms == 30 and report.latency.p95_ms == 1000 and report.latency.max_ms == 1000
    assert (report.tokens.prompt, report.tokens.completion) == (500, 35)

    encoded = msgspec.json.decode(msgspec.json.encode(report))
    assert {
        "total",
        "correct",
        "accuracy",
        "by_category",
        "by_database",
        "failures",
        "latency",
        "tokens",
    } <= set(encoded)
    assert {"question", "data_source", "status", "error_code", "reason"} <= set(encoded["failures"][0])


def test_empty_report() -> None:
    report = build_report([])
    assert report.total == 0 and report.accuracy == 0.0 and report.latency.p50_ms == 0.0


def test_print_report_shows_scores_and_failures() -> None:
    buffer = io.StringIO()
    report = build_report([outcome(None), outcome("rejected", db="[bold]x"), outcome("timeout", db="atis")])
    print_report(report, Console(file=buffer, width=160, color_system=None), max_failures=1)
    text = buffer.getvalue()
    assert "Execution accuracy" in text and "33.3%" in text and "atis" in text
    # scores, failure data source, failure question: printed as text, not taken as markup
    assert text.count("[bold]x") == 3
    assert "Failures (2)" in text and "… and 1 more" in text
    assert "by reason: rejected 1, timeout 1" in text
