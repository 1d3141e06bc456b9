"""How long and how often to measure (`python -m bench [--quick] [--repeats N]`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    repeats: int
    quick: bool
    logdir: Path  # process logs and profiles of this run
    profile: bool = False  # py-spy the API/worker and pyinstrument the guard while measuring
    connections: int = 32

    @property
    def wrk_s(self) -> float:
        """Seconds per wrk run."""
        return 3 if self.quick else 8

    @property
    def e2e_sequential(self) -> int:
        """Attempts per one-at-a-time end-to-end run."""
        return 100 if self.quick else 300

    @property
    def e2e_rate_s(self) -> float:
        """Seconds of the 50 attempts/s end-to-end run."""
        return 3 if self.quick else 8

    @property
    def drain_attempts(self) -> int:
        """Attempts queued before one worker drains them (instant LLM)."""
        return 1000 if self.quick else 2000

    @property
    def slow_llm_pools(self) -> tuple[int, ...]:
        """Worker pool sizes tried with a 1 s LLM (64 is the product's default since 583465f9)."""
        return (64, 128) if self.quick else (8, 64, 128)

    @property
    def slow_llm_rounds(self) -> int:
        """Attempts queued per pool slot with a 1 s LLM, i.e. roughly seconds of steady state."""
        return 3 if self.quick else 4

    @property
    def sse_streams(self) -> int:
        return 2000

    @property
    def guard_s(self) -> float:
        """Seconds of back-to-back checks per statement and run."""
        return 0.5 if self.quick else 1.5

    @property
    def result_attempts(self) -> int:
        """10,000-row attempts per repeat (each stored and served)."""
        return 2 if self.quick else 5
