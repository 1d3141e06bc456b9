"""Attempt statuses and the moves between them (SPEC "Statuses")."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    GENERATING = "generating"
    VALIDATING = "validating"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


RUNNING = frozenset({Status.GENERATING, Status.VALIDATING, Status.EXECUTING})
ACTIVE = frozenset({Status.QUEUED}) | RUNNING
TERMINAL = frozenset(Status) - ACTIVE


def is_terminal(status: str) -> bool:
    return status in TERMINAL
