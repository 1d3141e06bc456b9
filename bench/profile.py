"""Profiles taken while a scenario runs (`python -m bench --profile`): py-spy on the API or worker
process, written as collapsed stacks (load them in speedscope.app or flamegraph.pl) plus a text
summary of where the samples fell."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RATE = 250  # samples per second


def _py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


@contextmanager
def spy(pid: int, out: Path, *, enabled: bool = True) -> Iterator[None]:
    """Sample `pid` while the block runs; write `out` (collapsed stacks) and `out`.summary.txt."""
    binary = _py_spy() if enabled else None
    if binary is None:
        yield
        return
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            str(RATE),
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    started = time.monotonic()
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            err = b""
        if out.exists():
            out.with_suffix(".summary.txt").write_text(summarize(out, time.monotonic() - started))
        else:
            out.with_suffix(".summary.txt").write_text(
                f"py-spy wrote nothing: {err.decode(errors='replace')}"
            )


def _package(frame: str) -> str:
    """`Connection.execute (asyncpg/connection.py)` -> `asyncpg`."""
    if " (" not in frame:
        return frame
    path = frame.rsplit(" (", 1)[1].rstrip(")")
    return path.split("/", 1)[0] if "/" in path else path.removesuffix(".py")


def summarize(collapsed: Path, seconds: float, top: int = 30) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            f.split(" (", 1)[0] + " (" + f.split(" (", 1)[1].rsplit(":", 1)[0] + ")" if " (" in f else f
            for f in stack.split(";")
        ]
        total += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples\n"
    lines = [
        f"{total} busy samples in {seconds:.1f} s at {RATE}/s: the process was busy "
        f"{100 * total / (RATE * seconds):.0f}% of one core (idle waits are not sampled)",
        "",
        f"self time, top {top}:",
    ]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "self time by package:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in packages.most_common(15)]
    lines += ["", f"inclusive time, top {top}:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
