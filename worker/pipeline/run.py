"""One attempt, start to finish: claim → generate → validate → execute → store.

Every status change is committed (with its event row) before it is announced, and each is a
conditional update from the status this worker last wrote, so a redelivered message, a reaper or a
user's cancel that got there first simply makes the next step find nothing to do."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from shared.attempts import repository as attempts
from shared.attempts.models import Attempt, Event
from shared.attempts.status import RUNNING, Status
from shared.knowledge import repository as knowledge
from shared.knowledge.match import CLOSE_ENOUGH, closest
from shared.pipeline_errors import (
    AttemptCancelled,
    LlmNotConfigured,
    OperationTimeout,
    PipelineError,
    QuestionUnanswerable,
    SqlExecutionError,
    SqlRejected,
)
from shared.results import repository as results
from shared.sqlguard import policy
from shared.targets.config import DataSource
from shared.targets.introspect import SchemaSnapshot, render_schema
from shared.targets.relevance import relevant_tables
from worker import metrics
from worker.pipeline.execute import ExecutionLimits, PostgresTarget, ResultSet
from worker.pipeline.prompt import Conversation, Example
from worker.pipeline.reply import ReplyUnparseable
from worker.runtime import WorkerRuntime

log = logging.getLogger("sqlagent.worker")

PROMPT_EXAMPLES = 3
NO_LLM = (
    "No LLM is configured and no knowledge-base example matches this question closely. Set "
    "SQLAGENT_LLM_BASE_URL (any OpenAI-compatible endpoint: vLLM, Ollama, llama.cpp server) and "
    "SQLAGENT_LLM_MODEL, or SQLAGENT_LLM_API_KEY for OpenAI, and restart the worker."
)


@dataclass
class _Progress:
    """What this worker has written so far; `status` is the precondition of the next move."""

    attempt: Attempt
    status: Status = Status.GENERATING
    rounds: int = 0
    llm_ms: float = 0.0
    exec_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cancelled: bool = False
    lease_lost: bool = False


class _Gone(Exception):
    """The attempt moved under us (deleted, cancelled, requeued by the reaper): stop quietly."""


async def run_attempt(rt: WorkerRuntime, attempt_id: str, *, instructions: str | None = None) -> str:
    """Run one attempt to a terminal status. `instructions` (evaluation sets) go into the prompt."""
    claimed = await attempts.take(rt.db, attempt_id, owner=rt.worker_id, lease_s=rt.settings.lease_s)
    if claimed is None:
        current = await attempts.get(rt.db, attempt_id)
        log.info("attempt %s not claimed (status %s)", attempt_id, current.status if current else "deleted")
        return current.status if current else "deleted"
    event, attempt, examples = claimed
    _announce(rt, event)
    if attempt.started_at is not None:
        metrics.observe_stage("queue", (attempt.started_at - attempt.created_at).total_seconds())
    progress = _Progress(attempt=attempt)
    work = asyncio.current_task()
    assert work is not None
    heartbeat = asyncio.create_task(_heartbeat(rt, progress, work))
    try:
        async with asyncio.timeout(rt.settings.agent.attempt_deadline_s):
            await _answer(rt, progress, examples, instructions)
    except _Gone:
        pass
    except PipelineError as exc:
        await _finish(rt, progress, Status(exc.status), exc.error_code, exc.detail)
    except TimeoutError:
        await _finish(
            rt,
            progress,
            Status.TIMED_OUT,
            OperationTimeout.error_code,
            f"the attempt exceeded its deadline of {rt.settings.agent.attempt_deadline_s:g} s",
        )
    except asyncio.CancelledError:
        if not (progress.cancelled or progress.lease_lost):
            raise  # the worker is shutting down: the lease expires and the reaper requeues it
        if progress.cancelled:
            await _finish(
                rt, progress, Status.CANCELLED, AttemptCancelled.error_code, "cancelled by the user"
            )
    except Exception:
        log.exception("attempt %s failed with a bug", attempt_id)
        await _finish(rt, progress, Status.FAILED, "INTERNAL_ERROR", "internal error; see the worker log")
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
    # The final status goes out before the task ends (and Celery's end-of-task work begins).
    await rt.announcer.flush()
    return progress.status.value


async def _heartbeat(rt: WorkerRuntime, progress: _Progress, work: asyncio.Task[object]) -> None:
    """Renew the lease; stop the work when the user cancels or the lease was taken from us."""
    interval = max(rt.settings.lease_s / 3, 0.05)
    while True:
        await asyncio.sleep(interval)
        try:
            cancel = await attempts.renew_lease(
                rt.db, progress.attempt.id, owner=rt.worker_id, lease_s=rt.settings.lease_s
            )
        except Exception as exc:  # app database blip: keep working, try again next beat
            log.warning("lease renewal failed for %s: %s", progress.attempt.id, exc)
            continue
        if cancel is None:
            progress.lease_lost = True
            work.cancel()
            return
        if cancel:
            progress.cancelled = True
            work.cancel()
            return


async def _answer(
    rt: WorkerRuntime, progress: _Progress, examples: list[knowledge.Example], instructions: str | None
) -> None:
    attempt = progress.attempt
    source = rt.settings.data_source(attempt.data_source)
    if source is None:
        raise PipelineError(f"data source {attempt.data_source!r} is no longer configured")
    snapshot = await rt.snapshot(source)
    ranked = closest(attempt.question, examples, lambda e: e.question, limit=PROMPT_EXAMPLES)

    if ranked and ranked[0][0] >= CLOSE_ENOUGH:
        best = ranked[0][1]
        try:
            await _validate_and_run(
                rt,
                progress,
                source,
                snapshot,
                best.sql,
                f"Answered from the verified knowledge base (example #{best.id}: {best.question!r}).",
            )
            return
        except (SqlRejected, SqlExecutionError) as exc:
            if rt.llm is None:
                raise
            log.warning("knowledge example %s failed (%s); asking the LLM", best.id, exc.detail)
            await _move(rt, progress, Status.GENERATING)
    if rt.llm is None:
        raise LlmNotConfigured(NO_LLM)

    conversation = Conversation.start(
        dialect=source.dialect,
        schema_text=render_schema(snapshot, relevant_tables(snapshot, attempt.question), source.dialect),
        examples=[Example(question=e.question, sql=e.sql) for _, e in ranked],
        question=attempt.question,
        instructions=instructions,
    )
    max_rounds = rt.settings.agent.max_rounds
    while True:
        started = time.perf_counter()
        try:
            reply = await rt.llm.complete(conversation)
        except ReplyUnparseable as exc:
            if exc.reply is None:
                raise
            _count(progress, exc.reply, started)
            if progress.rounds >= max_rounds:
                raise
            conversation.add_reply(exc.reply)
            conversation.add_repair(attempt.question, exc.detail)
            continue
        _count(progress, reply, started)
        if reply.sql is None:
            raise QuestionUnanswerable(
                reply.explanation or "the model says this data cannot answer the question"
            )
        try:
            await _validate_and_run(rt, progress, source, snapshot, reply.sql, reply.explanation)
            return
        except (SqlRejected, SqlExecutionError) as exc:
            if progress.rounds >= max_rounds:
                raise
            log.info("attempt %s round %d: %s; repairing", attempt.id, progress.rounds, exc.detail)
            conversation.add_reply(reply)
            conversation.add_repair(attempt.question, exc.detail)
            await _move(rt, progress, Status.GENERATING)


def _count(progress: _Progress, reply: object, started: float) -> None:
    elapsed = time.perf_counter() - started
    progress.rounds += 1
    progress.llm_ms += elapsed * 1000
    progress.prompt_tokens += getattr(reply, "prompt_tokens", 0)
    progress.completion_tokens += getattr(reply, "completion_tokens", 0)
    metrics.observe_stage("llm", elapsed)
    metrics.count_tokens(getattr(reply, "prompt_tokens", 0), getattr(reply, "completion_tokens", 0))


async def _validate_and_run(
    rt: WorkerRuntime,
    progress: _Progress,
    source: DataSource,
    snapshot: SchemaSnapshot,
    sql: str,
    explanation: str,
) -> None:
    await _move(rt, progress, Status.VALIDATING, sql=sql, explanation=explanation)
    checking = time.perf_counter()
    try:
        checked = await policy.check(source, snapshot, sql)
    finally:
        metrics.observe_stage("guard", time.perf_counter() - checking)
    # The attempt keeps the SQL as written; the guard's schema-qualified re-serialisation runs.
    await _move(rt, progress, Status.EXECUTING)
    target = await rt.target(source, snapshot)
    limits = ExecutionLimits(
        statement_timeout_s=rt.settings.agent.statement_timeout_s,
        row_cap=rt.settings.agent.row_cap,
        max_bytes=rt.settings.agent.result_max_bytes,
    )
    started = time.perf_counter()
    try:
        if isinstance(target, PostgresTarget):
            result = await target.run(
                checked, search_path=policy.search_path(source, snapshot), limits=limits
            )
        else:
            result = await target.run(checked, limits=limits)
    finally:
        progress.exec_ms += (time.perf_counter() - started) * 1000
        metrics.observe_stage("execute", time.perf_counter() - started)
    await _succeed(rt, progress, result)


def _metrics(progress: _Progress) -> dict[str, Any]:
    return {
        "rounds": progress.rounds,
        "llm_ms": round(progress.llm_ms) if progress.rounds else None,
        "exec_ms": round(progress.exec_ms),
        "prompt_tokens": progress.prompt_tokens,
        "completion_tokens": progress.completion_tokens,
    }


async def _move(rt: WorkerRuntime, progress: _Progress, to: Status, **fields: Any) -> None:
    event = await attempts.transition(
        rt.db, progress.attempt.id, expected={progress.status}, to=to, **fields, **_metrics(progress)
    )
    if event is None:
        raise _Gone()
    progress.status = to
    _announce(rt, event)


async def _succeed(rt: WorkerRuntime, progress: _Progress, result: ResultSet) -> None:
    event = await attempts.succeed(
        rt.db,
        progress.attempt.id,
        expected={progress.status},
        result=results.NewResult(
            columns=[results.StoredColumn(c.name, c.type) for c in result.columns],
            rows=result.rows,
            truncated=result.truncated,
            byte_size=result.byte_size,
        ),
        row_count=len(result.rows),
        truncated=result.truncated,
        **_metrics(progress),
    )
    if event is None:
        raise _Gone()
    progress.status = Status.SUCCEEDED
    _announce(rt, event)


async def _finish(rt: WorkerRuntime, progress: _Progress, to: Status, error_code: str, detail: str) -> None:
    # From wherever it is: a cancel or deadline can land in any running status.
    event = await attempts.transition(
        rt.db,
        progress.attempt.id,
        expected=RUNNING,
        to=to,
        error_code=error_code,
        detail=detail,
        **_metrics(progress),
    )
    if event is not None:
        progress.status = to
        _announce(rt, event)


def _announce(rt: WorkerRuntime, event: Event) -> None:
    # Committed already; published in order by the runtime's announcer, without waiting for it.
    rt.announcer.announce(event)
