"""The live stack for integration tests: real `sqlagent serve` and `sqlagent worker` processes
against the real app database, Redis and an OpenAI-compatible test server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Stack:
    env: dict[str, str]
    workdir: Path
    port: int = 0
    processes: list[Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, name: str, *args: str) -> Process:
        log = self.workdir / f"{name}-{len(self.processes)}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        process = Process(name, proc, log)
        self.processes.append(process)
        return process

    def start_api(self) -> Process:
        self.port = self.port or free_port()
        api = self.spawn("api", "serve", "--port", str(self.port))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if api.proc.poll() is not None:
                raise RuntimeError(f"API exited:\n{api.output()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return api
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"API did not start:\n{api.output()}")

    def start_worker(self, concurrency: int = 4) -> Process:
        return self.spawn("worker", "worker", "--concurrency", str(concurrency))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.output()[-4000:]}" for p in self.processes)

    def create_user(self, name: str, password: str, *, admin: bool = False) -> None:
        args = ["users", "create", name, "--password-stdin"] + (["--admin"] if admin else [])
        result = cli(*args, env=self.env, stdin=password + "\n")
        assert result.returncode == 0, result.stderr

    @contextmanager
    def client(self, username: str, password: str) -> Iterator[httpx.Client]:
        """A cookie-session client, logged in."""
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            resp = client.post("/api/auth/login", json={"username": username, "password": password})
            assert resp.status_code == 200, resp.text
            yield client

    def token(self, username: str, password: str) -> str:
        with self.client(username, password) as session:
            return str(session.post("/api/auth/tokens", json={"name": "tests"}).json()["token"])

    @contextmanager
    def token_client(self, username: str, password: str) -> Iterator[httpx.Client]:
        headers = {"Authorization": f"Bearer {self.token(username, password)}"}
        with httpx.Client(base_url=self.base_url, timeout=30, headers=headers) as client:
            yield client


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQLAGENT_", "OPENAI_"))}
    env.update(
        SQLAGENT_COOKIE_SECURE="false",
        SQLAGENT_LOG_FORMAT="text",
        SQLAGENT_RATE_LIMITS="false",
        SQLAGENT_LEASE_S="3",
        SQLAGENT_SWEEP_INTERVAL_S="0.5",
        SQLAGENT_REDISPATCH_AFTER_S="5",
        SQLAGENT_LLM_MAX_RETRIES="1",
        SQLAGENT_LLM_TIMEOUT_S="10",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def wait_terminal(client: httpx.Client, attempt_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/queries/{attempt_id}").json()
        if body["status"] in {"succeeded", "failed", "rejected", "timed_out", "cancelled"}:
            return body
        time.sleep(0.05)
    raise AssertionError(f"attempt {attempt_id} not terminal after {timeout}s: {body}")


@contextmanager
def embedded_api(workdir: Path, targets_toml: str) -> Iterator[Stack]:
    """One API process in embedded mode (its own in-process worker) on a SQLite app database, with
    the given targets file and two users: alice (user) and root (admin)."""
    targets = workdir / "targets.toml"
    targets.write_text(targets_toml)
    env = base_env(SQLAGENT_DATABASE_URL=f"sqlite:///{workdir}/app.db", SQLAGENT_TARGETS_FILE=str(targets))
    assert cli("migrate", env=env).returncode == 0
    stack = Stack(env=env, workdir=workdir)
    stack.create_user("alice", "alice-password")
    stack.create_user("root", "root-password", admin=True)
    stack.start_api()
    try:
        yield stack
    finally:
        stack.stop()
