"""`sqlagent eval`: run a question set through the agent's own pipeline, in this process, on the
configured app database and LLM, and score it by execution accuracy (SPEC "`sqlagent eval`").

Each question becomes a real attempt of the user `eval` (created when missing) and runs through
`worker.pipeline.run.run_attempt` on a `WorkerRuntime`, exactly as a worker would run it; no
broker is involved. The gold SQL then runs on the same data source through the same read-only
executor (so both sides get the same value conversion), and `shared.evaldata.compare` decides.

Two choices worth knowing:

* Instructions from the CSV reach the prompt's "Instructions for this question" section
  (`run_attempt(..., instructions=...)`).
* Defog's unanswerable questions come with instructions to answer with the apology SELECT. Our
  protocol's way to decline is `"sql": null`, which the system prompt already explains, so those
  instructions are not sent; the question is right when the attempt ends QUESTION_UNANSWERABLE.

Exit status: 0 when the run completed (whatever the accuracy), 1 when `--min-accuracy` was not
reached, 2 when it could not run (bad CSV, unknown data source, unreachable database, no LLM and
no knowledge base).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.attempts import repository as attempts
from shared.attempts.models import Attempt
from shared.attempts.status import is_terminal
from shared.db.database import is_unique_violation
from shared.db.migrate import migrate
from shared.evaldata import bundled_questions
from shared.evaldata.compare import ResultTable, asks_for_order, compare
from shared.evaldata.questions import EvalQuestion, QuestionsError, read_questions
from shared.evaldata.report import EvalReport, Outcome, build_report, classify, print_report
from shared.knowledge import repository as knowledge
from shared.logs import setup_logging
from shared.pipeline_errors import PipelineError
from shared.results import repository as results
from shared.settings import ConfigError, Settings, load_settings, load_targets_file
from shared.sqlguard import policy
from shared.targets.config import DataSource
from shared.users import repository as users
from shared.users.passwords import ahash_password
from worker.pipeline.execute import ExecutionLimits, PostgresTarget
from worker.pipeline.run import run_attempt
from worker.runtime import WorkerRuntime

EXIT_OK, EXIT_BELOW_MIN, EXIT_CANNOT_RUN = 0, 1, 2
EVAL_USER = "eval"
_POLL_S = 0.2

log = logging.getLogger("sqlagent.eval")


class CannotRun(Exception):
    """The evaluation cannot start; `str()` is the one line shown (exit status 2)."""


# --- setting up ------------------------------------------------------------------------------


def _settings(targets: Path | None) -> Settings:
    try:
        settings = load_settings()
        if targets is not None:
            sources = load_targets_file(targets, "--targets")
            if not sources:
                raise CannotRun(f"--targets: {targets} defines no [targets.NAME] data source")
            settings = msgspec.structs.replace(settings, data_sources=tuple(sources))
    except ConfigError as exc:
        raise CannotRun(f"configuration error: {exc}") from None
    return settings


def _questions(args: argparse.Namespace, settings: Settings) -> list[EvalQuestion]:
    path = Path(args.questions)
    if not path.exists():
        path = bundled_questions(args.questions) or path
    try:
        questions = read_questions(path, default_data_source=args.data_source)
    except QuestionsError as exc:
        raise CannotRun(str(exc)) from None
    if args.data_source:
        questions = [q for q in questions if q.data_source == args.data_source]
        if not questions:
            raise CannotRun(f"{path}: no question for data source {args.data_source!r}")
    configured = {s.name for s in settings.data_sources}
    unknown = sorted({q.data_source for q in questions} - configured)
    if unknown:
        raise CannotRun(
            f"unknown data source(s) {', '.join(map(repr, unknown))}; configured: "
            f"{', '.join(sorted(configured)) or 'none'} (use --targets FILE or SQLAGENT_TARGETS_FILE)"
        )
    return questions


def _check_options(args: argparse.Namespace) -> None:
    if not args.data_source and args.targets is None:
        raise CannotRun("give --data-source NAME (a configured data source) or --targets FILE (or both)")
    if args.concurrency < 1:
        raise CannotRun("--concurrency must be at least 1")
    if args.min_accuracy is not None and not 0 <= args.min_accuracy <= 1:
        raise CannotRun("--min-accuracy must be between 0 and 1")
    if args.out is not None and not args.out.parent.is_dir():
        raise CannotRun(f"--out: the folder {args.out.parent} does not exist")


# --- the run ---------------------------------------------------------------------------------


async def _eval_user(rt: WorkerRuntime) -> int:
    found = await users.get_login(rt.db, EVAL_USER)
    if found is not None:
        return found[0].id
    try:
        # Nobody logs in as `eval`: a random password nobody knows.
        user = await users.create_user(
            rt.db, username=EVAL_USER, password_hash=await ahash_password(users.new_secret()), role="user"
        )
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        found = await users.get_login(rt.db, EVAL_USER)  # another eval run created it just now
        assert found is not None
        return found[0].id
    return user.id


def _source(rt: WorkerRuntime, name: str) -> DataSource:
    source = rt.settings.data_source(name)
    assert source is not None, name  # checked before the run
    return source


async def _preflight(rt: WorkerRuntime, questions: Sequence[EvalQuestion]) -> None:
    """Fresh schema snapshots (the database may have been reloaded since the last one), which also
    proves each data source is reachable; and something to answer with."""
    names = sorted({q.data_source for q in questions})
    for name in names:
        try:
            await rt.snapshot(_source(rt, name), refresh=True)
        except Exception as exc:
            detail = exc.detail if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
            raise CannotRun(f"data source {name!r} cannot be read: {detail}") from exc
    if rt.llm is None and not any([await knowledge.for_data_source(rt.db, name) for name in names]):
        raise CannotRun(
            "no LLM is configured and the knowledge base has no examples for these data sources: set "
            "SQLAGENT_LLM_BASE_URL (any OpenAI-compatible endpoint) or SQLAGENT_LLM_API_KEY"
        )


async def _run_gold(rt: WorkerRuntime, source: DataSource, sql: str) -> ResultTable:
    """The gold query on the same read-only executor the attempt used (same value conversion)."""
    snapshot = await rt.snapshot(source)
    target = await rt.target(source, snapshot)
    limits = ExecutionLimits(
        statement_timeout_s=rt.settings.agent.statement_timeout_s,
        row_cap=rt.settings.agent.row_cap,
        max_bytes=rt.settings.agent.result_max_bytes,
    )
    if isinstance(target, PostgresTarget):
        result = await target.run(sql, search_path=policy.search_path(source, snapshot), limits=limits)
    else:
        result = await target.run(sql, limits=limits)
    return ResultTable(columns=[c.name for c in result.columns], rows=result.rows)


async def _check_rows(rt: WorkerRuntime, question: EvalQuestion, attempt_id: str) -> tuple[bool | None, str]:
    """(the rows match a gold alternative, how they differ); None when no gold query could run."""
    meta = await results.get_meta(rt.db, attempt_id)
    if meta is None:
        return False, "the attempt succeeded but stored no result"
    rows = [row for chunk in await results.all_chunks(rt.db, attempt_id) for row in chunk]
    got = ResultTable(columns=[c.name for c in meta.columns], rows=rows)
    source = _source(rt, question.data_source)
    ordered = asks_for_order(question.question, question.category)
    differences, gold_errors = [], []
    for sql in question.gold:  # the full column list first; stop at the first match
        try:
            gold = await _run_gold(rt, source, sql)
        except PipelineError as exc:
            gold_errors.append(exc.detail)
            continue
        verdict = compare(gold, got, ordered=ordered)
        if verdict.match:
            return True, ""
        differences.append(verdict.reason)
    if not differences:
        return None, f"the gold SQL failed: {gold_errors[0]}"
    truncated = " (the result was cut by the row or byte cap)" if meta.truncated else ""
    return False, differences[0] + truncated


async def _wait_terminal(rt: WorkerRuntime, attempt_id: str) -> Attempt | None:
    """The attempt once terminal. `run_attempt` returns early only when someone else holds it
    (a worker of a live deployment on the same app database): wait for them."""
    deadline = time.monotonic() + rt.settings.agent.attempt_deadline_s + 60
    while True:
        attempt = await attempts.get(rt.db, attempt_id)
        if attempt is None or is_terminal(attempt.status) or time.monotonic() > deadline:
            return attempt
        await asyncio.sleep(_POLL_S)


async def _run_one(rt: WorkerRuntime, user_id: int, question: EvalQuestion) -> Outcome:
    started = time.perf_counter()
    created = await attempts.create(
        rt.db, user_id=user_id, question=question.question, data_source=question.data_source
    )
    # It runs here and now: keep any sweeper on the same app database from publishing it.
    await attempts.mark_dispatched(rt.db, [created.id])
    await run_attempt(
        rt, created.id, instructions=None if question.unanswerable else question.instructions or None
    )
    final = await _wait_terminal(rt, created.id)
    latency_ms = (time.perf_counter() - started) * 1000
    if final is None:
        return Outcome(
            question=question.question,
            data_source=question.data_source,
            category=question.category,
            status="deleted",
            error_code=None,
            reason="other",
            detail="the attempt was deleted while it ran",
            latency_ms=latency_ms,
        )
    rows_match: bool | None = None
    detail = final.error_detail or ""
    if final.status == "succeeded" and not question.unanswerable:
        rows_match, detail = await _check_rows(rt, question, created.id)
    elif final.status == "succeeded":
        detail = "the data cannot answer this question, but the model wrote SQL for it"
    reason = classify(
        unanswerable=question.unanswerable,
        status=final.status,
        error_code=final.error_code,
        sql=final.sql,
        rows_match=rows_match,
    )
    return Outcome(
        question=question.question,
        data_source=question.data_source,
        category=question.category,
        status=final.status,
        error_code=final.error_code,
        reason=reason,
        detail="" if reason is None else detail,
        sql=final.sql,
        latency_ms=latency_ms,
        prompt_tokens=final.prompt_tokens,
        completion_tokens=final.completion_tokens,
    )


async def evaluate(
    rt: WorkerRuntime,
    questions: Sequence[EvalQuestion],
    *,
    concurrency: int,
    on_done: Callable[[Outcome], None] = lambda _: None,
) -> list[Outcome]:
    """Run every question on `rt`, `concurrency` at a time, in the order given. Raises
    `CannotRun` before running anything when the run cannot work."""
    user_id = await _eval_user(rt)
    await _preflight(rt, questions)
    slots = asyncio.Semaphore(concurrency)

    async def one(question: EvalQuestion) -> Outcome:
        async with slots:
            try:
                outcome = await _run_one(rt, user_id, question)
            except Exception as exc:  # e.g. the app database went away: score it, keep going
                log.warning("question at line %d failed to run: %r", question.line, exc)
                outcome = Outcome(
                    question=question.question,
                    data_source=question.data_source,
                    category=question.category,
                    status="not_run",
                    error_code=None,
                    reason="other",
                    detail=f"{type(exc).__name__}: {exc}",
                )
        on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(one(q) for q in questions)))


def _run(settings: Settings, questions: list[EvalQuestion], concurrency: int) -> EvalReport:
    try:
        asyncio.run(migrate(settings.database.url))
    except Exception as exc:  # unreachable or unwritable app database
        raise CannotRun(f"the app database cannot be used: {type(exc).__name__}: {exc}") from exc
    try:
        rt = WorkerRuntime(settings)
    except Exception as exc:
        raise CannotRun(f"the worker runtime cannot start: {type(exc).__name__}: {exc}") from exc
    try:
        progress = Progress(
            TextColumn("evaluating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        task = progress.add_task("questions", total=len(questions))
        with progress:
            outcomes = rt.run(
                evaluate(rt, questions, concurrency=concurrency, on_done=lambda _: progress.advance(task))
            )
    finally:
        rt.close()
    return build_report(outcomes)


def run_eval(args: argparse.Namespace) -> int:
    """`sqlagent eval`; returns the exit status."""
    try:
        _check_options(args)
        settings = _settings(args.targets)
        setup_logging(settings.log_format, logging.WARNING)
        questions = _questions(args, settings)
        report = _run(settings, questions, args.concurrency)
    except CannotRun as exc:
        print(f"sqlagent eval: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print_report(report, Console())
    if args.out is not None:
        args.out.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    if args.min_accuracy is not None and report.accuracy < args.min_accuracy:
        print(
            f"sqlagent eval: accuracy {report.accuracy:.3f} is below --min-accuracy {args.min_accuracy:g}",
            file=sys.stderr,
        )
        return EXIT_BELOW_MIN
    return EXIT_OK
