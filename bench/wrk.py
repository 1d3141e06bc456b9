"""Closed-loop HTTP load with `wrk` (C, so the load generator costs the two cores little).

A generated Lua script sets the method, body and headers, and its `done` hook prints the summary
as one JSON line, so nothing depends on wrk's human-readable number formatting."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARKER = "WRK_JSON "

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\\n',
    "MARKER", summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
""".replace("MARKER", MARKER)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors, timeouts and non-2xx/3xx answers

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for ASCII


def script(method: str = "GET", body: str | None = None, headers: dict[str, str] | None = None) -> str:
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    return "\n".join(lines) + "\n" + _DONE


def run(
    url: str,
    *,
    duration_s: float,
    connections: int = 32,
    threads: int = 2,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script(method, body, headers))
    try:
        result = subprocess.run(  # noqa: S603 - our own command line
            [
                binary,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(duration_s))}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
            check=False,
        )
    finally:
        Path(handle.name).unlink(missing_ok=True)
    line = next((x for x in result.stdout.splitlines() if x.startswith(MARKER)), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    data = json.loads(line.removeprefix(MARKER))
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=sum(
            data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        ),
    )
