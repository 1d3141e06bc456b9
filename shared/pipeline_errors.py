"""Failures inside the worker pipeline. Each ends an attempt with a terminal status and an
error code (SPEC "How attempts end"); none of them is ever an HTTP error."""

from __future__ import annotations

from typing import ClassVar


class PipelineError(Exception):
    status: ClassVar[str] = "failed"
    error_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SqlRejected(PipelineError):
    """The guard refused the SQL. `rule` names the rule broken (e.g. "single_statement")."""

    status = "rejected"
    error_code = "SQL_REJECTED"

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule


class SqlExecutionError(PipelineError):
    """The database refused or failed the statement (unknown column, type mismatch...)."""

    error_code = "SQL_EXECUTION_ERROR"


class QuestionUnanswerable(PipelineError):
    error_code = "QUESTION_UNANSWERABLE"


class LlmNotConfigured(PipelineError):
    error_code = "LLM_NOT_CONFIGURED"


class LlmUnavailable(PipelineError):
    error_code = "LLM_SERVICE_UNAVAILABLE"


class TargetUnavailable(PipelineError):
    error_code = "TARGET_UNAVAILABLE"


class OperationTimeout(PipelineError):
    status = "timed_out"
    error_code = "OPERATION_TIMEOUT"


class AttemptCancelled(PipelineError):
    status = "cancelled"
    error_code = "CANCELLED"
