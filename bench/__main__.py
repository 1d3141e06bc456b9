"""`python -m bench [--quick] [--repeats N] [--only NAME ...] [--profile] [--compare RESULTS.json]`"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import e2e, guard, sse, storage, submit, worker
from bench.config import Config
from bench.report import RESULTS_DIR, Report, load
from bench.stack import Stack

Scenario = Callable[[Stack, Report, Config], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    "submit": submit.run,
    "e2e": e2e.run,
    "worker": worker.run,
    "sse": sse.run,
    "guard": guard.run,
    "results": storage.run,
}


def _raise_open_files(wanted: int = 65536) -> None:
    """2,000 SSE sockets here, and as many in the API process, which inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _run(names: list[str], report: Report, cfg: Config) -> None:
    stack = Stack(logdir=cfg.logdir)
    say(f"starting the stack (logs in {cfg.logdir})")
    try:
        await stack.start()
        for name in names:
            started = time.monotonic()
            load = os.getloadavg()[0]
            say(f"{name} … (load average {load:.1f})")
            try:
                await SCENARIOS[name](stack, report, cfg)
            except Exception as exc:
                report.error(name, f"{type(exc).__name__}: {exc}")
                traceback.print_exc()
            say(f"{name} done in {time.monotonic() - started:.0f} s")
            # Other work on the machine shows up as a load average above what the stack causes.
            report.notes.append(
                f"{name}: {time.monotonic() - started:.0f} s, load average (1 min) {load:.1f} before, "
                f"{os.getloadavg()[0]:.1f} after"
            )
            stack.stop_worker()
            await stack.flush()
    finally:
        await stack.close()


def _loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop when installed (uvicorn[standard] brings it): the client side should cost little."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repeat, shorter runs (about 3 minutes)")
    parser.add_argument("--repeats", type=int, help="runs per figure (default 3; 1 with --quick)")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these scenarios")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the API/worker, pyinstrument the guard"
    )
    parser.add_argument("--compare", type=Path, help="an earlier results JSON, shown beside")
    args = parser.parse_args(argv)

    scenarios = args.only or list(SCENARIOS)
    if "submit" in scenarios and shutil.which("wrk") is None:
        # Before starting anything: the submit scenario is minutes into a run otherwise.
        parser.exit(2, "python -m bench: the submit scenario needs wrk: apt-get install wrk\n")
    repeats = args.repeats or (1 if args.quick else 3)
    report = Report(quick=args.quick, repeats=repeats)
    logdir = RESULTS_DIR / f"{report.started.strftime('%Y%m%dT%H%M%SZ')}-logs"
    cfg = Config(repeats=repeats, quick=args.quick, logdir=logdir, profile=args.profile)
    previous = load(args.compare) if args.compare else None
    _raise_open_files()
    if os.getloadavg()[0] > 1.0:
        say(
            f"warning: load average {os.getloadavg()[0]:.1f} before starting — other work competes for the "
            f"{os.cpu_count()} cores and will lower the figures"
        )
    started = time.monotonic()
    _loop_runner()(_run(scenarios, report, cfg))
    path = report.save()
    print()
    print(
        f"sqlagent bench, {report.started:%Y-%m-%d %H:%M} UTC, {repeats} repeat(s), "
        f"{time.monotonic() - started:.0f} s"
    )
    print(report.table(previous))
    print()
    print(report.summary())
    print(f"results: {path}\nlogs:    {logdir}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
