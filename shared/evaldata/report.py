"""The evaluation report: per-question outcomes in, accuracy by category and database, failure
reasons, latency and token totals out; as JSON (`--out`) and as rich tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["REASONS", "EvalReport", "Outcome", "build_report", "classify", "print_report"]

Reason = Literal[
    "rejected",  # the guard refused the SQL
    "sql_error",  # the database refused the SQL
    "wrong_rows",  # it ran, but the rows are not the gold's
    "unanswerable",  # the model declined a question that has gold SQL
    "answered_unanswerable",  # the model wrote SQL for a question it should decline
    "timeout",  # statement timeout or attempt deadline
    "llm_unavailable",  # no LLM answer (endpoint down, or none configured)
    "other",  # target down, internal error, gold SQL failing...
]
REASONS: tuple[str, ...] = (
    "rejected",
    "sql_error",
    "wrong_rows",
    "unanswerable",
    "answered_unanswerable",
    "timeout",
    "llm_unavailable",
    "other",
)


def classify(
    *, unanswerable: bool, status: str, error_code: str | None, sql: str | None, rows_match: bool | None
) -> Reason | None:
    """None when the attempt answered correctly, else why not. `rows_match` is the comparison of
    a succeeded attempt's rows with the gold rows (None when there was none to make)."""
    if unanswerable:
        if error_code == "QUESTION_UNANSWERABLE":
            return None
        if sql is not None:
            return "answered_unanswerable"
    elif status == "succeeded":
        if rows_match is None:  # the gold query could not be run
            return "other"
        return None if rows_match else "wrong_rows"
    if status == "rejected":
        return "rejected"
    if status == "timed_out":
        return "timeout"
    return {
        "SQL_EXECUTION_ERROR": "sql_error",
        "QUESTION_UNANSWERABLE": "unanswerable",
        "LLM_SERVICE_UNAVAILABLE": "llm_unavailable",
        "LLM_NOT_CONFIGURED": "llm_unavailable",
    }.get(error_code or "", "other")  # type: ignore[return-value]


class Outcome(msgspec.Struct, kw_only=True):
    """One question's run."""

    question: str
    data_source: str
    category: str
    status: str
    error_code: str | None
    reason: str | None  # None: correct
    detail: str = ""  # the error detail, or how the rows differ
    sql: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def correct(self) -> bool:
        return self.reason is None


class Score(msgspec.Struct, kw_only=True):
    total: int
    correct: int
    accuracy: float


class Failure(msgspec.Struct, kw_only=True):
    question: str
    data_source: str
    category: str
    status: str
    error_code: str | None
    reason: str
    detail: str
    sql: str | None


class Latency(msgspec.Struct, kw_only=True):
    p50_ms: float
    p95_ms: float
    max_ms: float


class Tokens(msgspec.Struct, kw_only=True):
    prompt: int
    completion: int


class EvalReport(msgspec.Struct, kw_only=True):
    total: int
    correct: int
    accuracy: float  # 0-1
    by_category: dict[str, Score]
    by_database: dict[str, Score]
    reasons: dict[str, int]  # failures per reason
    failures: list[Failure]
    latency: Latency
    tokens: Tokens


def _score(outcomes: Sequence[Outcome]) -> Score:
    correct = sum(o.correct for o in outcomes)
    return Score(total=len(outcomes), correct=correct, accuracy=correct / len(outcomes) if outcomes else 0.0)


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)


def _grouped(outcomes: Sequence[Outcome], key: str) -> dict[str, Score]:
    groups: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault(getattr(outcome, key) or "(none)", []).append(outcome)
    return {name: _score(group) for name, group in sorted(groups.items())}


def build_report(outcomes: Sequence[Outcome]) -> EvalReport:
    overall = _score(outcomes)
    failures = [
        Failure(
            question=o.question,
            data_source=o.data_source,
            category=o.category,
            status=o.status,
            error_code=o.error_code,
            reason=o.reason,
            detail=o.detail,
            sql=o.sql,
        )
        for o in outcomes
        if o.reason is not None
    ]
    reasons = {r: n for r in REASONS if (n := sum(f.reason == r for f in failures))}
    latencies = [o.latency_ms for o in outcomes]
    return EvalReport(
        total=overall.total,
        correct=overall.correct,
        accuracy=overall.accuracy,
        by_category=_grouped(outcomes, "category"),
        by_database=_grouped(outcomes, "data_source"),
        reasons=reasons,
        failures=failures,
        latency=Latency(
            p50_ms=_percentile(latencies, 0.5),
            p95_ms=_percentile(latencies, 0.95),
            max_ms=round(max(latencies, default=0.0), 1),
        ),
        tokens=Tokens(
            prompt=sum(o.prompt_tokens for o in outcomes),
            completion=sum(o.completion_tokens for o in outcomes),
        ),
    )


def _percent(score: Score) -> str:
    return f"{score.accuracy:.1%}"


def print_report(report: EvalReport, console: Console, *, max_failures: int = 30) -> None:
    table = Table(title="Execution accuracy", title_justify="left")
    for column, justify in (
        ("group", "left"),
        ("name", "left"),
        ("correct", "right"),
        ("total", "right"),
        ("accuracy", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    overall = Score(total=report.total, correct=report.correct, accuracy=report.accuracy)
    table.add_row("all", "", str(report.correct), str(report.total), _percent(overall), style="bold")
    for group, scores in (("category", report.by_category), ("database", report.by_database)):
        table.add_section()
        for name, score in scores.items():
            table.add_row(group, Text(name), str(score.correct), str(score.total), _percent(score))
    console.print(table)

    if report.failures:
        failures = Table(title=f"Failures ({len(report.failures)})", title_justify="left")
        for column in ("reason", "data source", "status", "error code", "question"):
            failures.add_column(column, overflow="fold")
        for failure in report.failures[:max_failures]:
            question = failure.question if len(failure.question) <= 80 else failure.question[:79] + "…"
            # Text(): a question like "[sic]" is data, not rich markup.
            failures.add_row(
                failure.reason,
                Text(failure.data_source),
                failure.status,
                failure.error_code or "",
                Text(question),
            )
        console.print(failures)
        if len(report.failures) > max_failures:
            console.print(f"… and {len(report.failures) - max_failures} more (all of them in --out)")
        console.print("by reason: " + ", ".join(f"{r} {n}" for r, n in report.reasons.items()))
    console.print(
        f"latency p50 {report.latency.p50_ms:.0f} ms, p95 {report.latency.p95_ms:.0f} ms; "
        f"tokens: {report.tokens.prompt} prompt, {report.tokens.completion} completion"
    )
