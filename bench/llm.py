"""The "instant" LLM: the tests' OpenAI-compatible server (tests/support/llm_server.py) in a child
process, its log in the run's folder, with Nagle's algorithm off.

Why the bench insists on TCP_NODELAY: the handler writes the response head and body in two `send`
calls, so without it the body of every keep-alive response waits for the client's delayed ACK —
measured here at ~44 ms per call instead of ~0.5 ms, which the bench would have reported as
sqlagent's latency (bench/README.md, finding 1). The test server sets it itself since 583465f9;
setting it here as well keeps the bench's numbers honest whatever that file does.

    python -m bench.llm --port 0 --script script.json     # prints its base URL, serves until SIGTERM
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class LlmProcess:
    def __init__(self, script: dict[str, Any], log: Path) -> None:
        self._script = script
        self._log = log
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> LlmProcess:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(self._script, handle)
        with self._log.open("w") as errors:
            self._process = subprocess.Popen(  # noqa: S603 - our own module
                [sys.executable, "-m", "bench.llm", "--port", "0", "--script", handle.name],
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                cwd=REPO,
            )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        Path(handle.name).unlink(missing_ok=True)
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the LLM test server did not start: {line!r}; see {self._log}")
        self.base_url = line
        return self

    def update(self, script: dict[str, Any]) -> None:
        """Merge a script (`"reset": true` starts from empty); see tests/support/llm_server.py."""
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            self.base_url.removesuffix("/v1") + "/_script",
            data=json.dumps(script).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None


def main() -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from support import llm_server

    llm_server._Handler.disable_nagle_algorithm = True
    llm_server.main()


if __name__ == "__main__":
    main()
