"""The results: one table on stdout, the same as JSON in bench/results/<timestamp>.json.

Every figure holds its samples (one per repeat); the table shows the median and the min-max spread,
and a target, when there is one, is judged on the median."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Target:
    op: Literal[">=", "<="]
    value: float

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.op == ">=" else measured <= self.value

    def text(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {fmt(self.value)}"


@dataclass
class Figure:
    scenario: str
    name: str
    unit: str
    samples: list[float]
    target: Target | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "PASS" if self.target.met(self.median) else "MISS"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(median=self.median, min=min(self.samples), max=max(self.samples), verdict=self.verdict)
        return data


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fmt(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


@dataclass
class Report:
    quick: bool
    repeats: int
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    figures: list[Figure] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        scenario: str,
        name: str,
        unit: str,
        samples: list[float],
        *,
        target: Target | None = None,
        note: str = "",
    ) -> Figure:
        figure = Figure(scenario, name, unit, [float(s) for s in samples], target, note)
        self.figures.append(figure)
        return figure

    def error(self, scenario: str, message: str) -> None:
        self.errors.append({"scenario": scenario, "error": message})

    def table(self, previous: dict[str, Any] | None = None) -> str:
        before = {(f["scenario"], f["name"]): f["median"] for f in (previous or {}).get("figures", [])}
        header = ["scenario", "figure", "median", "spread (min-max)", "unit", "target", ""]
        if previous is not None:
            header.append("previous")
        rows = [header]
        for f in self.figures:
            row = [
                f.scenario,
                f.name,
                fmt(f.median),
                f"{fmt(min(f.samples))}-{fmt(max(f.samples))}" if len(f.samples) > 1 else "",
                f.unit,
                f.target.text() if f.target else "",
                f.verdict,
            ]
            if previous is not None:
                old = before.get((f.scenario, f.name))
                row.append("" if old is None else fmt(old))
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        right = {2, 3}
        lines = []
        for index, row in enumerate(rows):
            cells = [
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("| " + " | ".join(cells) + " |")
            if index == 0:
                lines.append(
                    "|"
                    + "|".join(
                        ("-" * (w + 1) + ":" if i in right else "-" * (w + 2)) for i, w in enumerate(widths)
                    )
                    + "|"
                )
        out = "\n".join(lines)
        notes = [f"- {f.scenario} / {f.name}: {f.note}" for f in self.figures if f.note] + [
            f"- {n}" for n in self.notes
        ]
        if notes:
            out += "\n\n" + "\n".join(notes)
        if self.errors:
            out += "\n\nERRORS:\n" + "\n".join(f"- {e['scenario']}: {e['error']}" for e in self.errors)
        return out

    def summary(self) -> str:
        judged = [f for f in self.figures if f.target is not None]
        missed = [f"{f.scenario} / {f.name}" for f in judged if f.verdict == "MISS"]
        text = f"{len(judged) - len(missed)} of {len(judged)} targets met"
        return text + (f"; missed: {', '.join(missed)}" if missed else "")

    def save(self, directory: Path = RESULTS_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.started.strftime('%Y%m%dT%H%M%SZ')}.json"
        payload = {
            "started_at": self.started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "quick": self.quick,
            "repeats": self.repeats,
            "machine": machine(),
            "figures": [f.as_json() for f in self.figures],
            "notes": self.notes,
            "errors": self.errors,
        }
        path.write_text(json.dumps(payload, indent=2) + "\n")
        return path


def machine() -> dict[str, Any]:
    def version(command: list[str]) -> str:
        try:
            done = subprocess.run(  # noqa: S603 - fixed version queries
                command, capture_output=True, text=True, timeout=10, check=False
            )
        except OSError:
            return ""
        return done.stdout.strip()

    repo = str(RESULTS_DIR.parent.parent)
    commit = version(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    dirty = version(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit + ("+dirty" if dirty else ""),
        "redis": version(["redis-server", "--version"]),
        "wrk": (version(["wrk", "--version"]).splitlines() or [""])[0],
    }


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]
