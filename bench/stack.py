"""The stack under measurement: a fresh PostgreSQL app database and target database, a Redis of its
own on a free port, the OpenAI-compatible test server, and real `sqlagent serve` / `sqlagent worker`
processes whose logs go to files.

Nothing here reaches into product internals: processes are started through the CLI, the user is
made with `sqlagent users create`, the token comes from `POST /api/auth/tokens`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from bench.llm import LlmProcess

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("SQLAGENT_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_ROWS = 10_000
BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password"  # noqa: S105 - a throwaway user in a throwaway database
# The LLM test server answers every unscripted question with this: an instant `SELECT 1`.
INSTANT_SELECT_1 = {"sql": "SELECT 1", "explanation": "bench: instant answer"}
APP_TABLES = "attempts, attempt_events, attempt_results, result_chunks"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two `Stack.backend_cpu()` snapshots (new backends from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _sqlagent_command() -> list[str]:
    script = Path(sys.executable).with_name("sqlagent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Stack:
    logdir: Path
    app_db: str = ""
    target_db: str = ""
    redis_port: int = 0
    api_port: int = 0
    token: str = ""
    user_id: int = 0
    env: dict[str, str] = field(default_factory=dict)
    llm: LlmProcess | None = None
    redis_proc: Process | None = None
    api: Process | None = None
    worker: Process | None = None
    # More worker processes beside `worker` (the drain figure on every core).
    extra_workers: list[Process] = field(default_factory=list)
    _spawned: int = 0

    # -- addresses -----------------------------------------------------------------------------

    @property
    def app_url(self) -> str:
        return pg_url(self.app_db)

    @property
    def target_url(self) -> str:
        return pg_url(self.target_db)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        suffix = uuid.uuid4().hex[:8]
        self.app_db, self.target_db = f"sqlagent_bench_{suffix}", f"sqlagent_bench_target_{suffix}"
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            for name in (self.app_db, self.target_db):
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        await self._fill_target()
        self._start_redis()
        self.llm = LlmProcess({"default": INSTANT_SELECT_1}, self.logdir / "00-llm.log").start()
        self.env = self._env()
        self._cli("migrate")
        self._cli("users", "create", BENCH_USER, "--password-stdin", stdin=BENCH_PASSWORD + "\n")
        await self.start_api()
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            login = await client.post(
                "/api/auth/login", json={"username": BENCH_USER, "password": BENCH_PASSWORD}
            )
            login.raise_for_status()
            self.user_id = int(login.json()["user"]["id"])
            created = await client.post("/api/auth/tokens", json={"name": "bench"})
            created.raise_for_status()
            self.token = str(created.json()["token"])

    def _env(self) -> dict[str, str]:
        assert self.llm is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SQLAGENT_", "OPENAI_"))}
        env.update(
            SQLAGENT_DATABASE_URL=self.app_url,
            SQLAGENT_BROKER_URL=self.redis_url,
            SQLAGENT_TARGET_URL=self.target_url,
            SQLAGENT_LLM_BASE_URL=self.llm.base_url,
            SQLAGENT_LLM_MODEL="test-model",
            SQLAGENT_RATE_LIMITS="false",
            SQLAGENT_LOG_FORMAT="json",
            # Plain http on loopback: the login cookie must come back to us.
            SQLAGENT_COOKIE_SECURE="false",
            PYTHONUNBUFFERED="1",
        )
        return env

    async def _fill_target(self) -> None:
        """The `default` data source: one table of TARGET_ROWS rows of the common column types."""
        conn = await asyncpg.connect(self.target_url)
        try:
            await conn.execute(
                """CREATE TABLE orders (
                       id         integer PRIMARY KEY,
                       customer   text NOT NULL,
                       amount     numeric(12, 2) NOT NULL,
                       placed_at  timestamptz NOT NULL,
                       shipped    boolean NOT NULL,
                       note       text
                   );
                   INSERT INTO orders
                   SELECT g, 'customer ' || (g % 997), round((g * 7.31) % 1000, 2),
                          timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes',
                          g % 3 = 0, CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END
                   FROM generate_series(1, $1::int) AS g;
                   ANALYZE orders;""".replace("$1::int", str(TARGET_ROWS))
            )
        finally:
            await conn.close()

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (the bench runs a Redis of its own)")
        self.redis_port = free_port()
        self.redis_proc = self.spawn(
            "redis",
            [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "10000",
            ],
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{self.redis_proc.tail()}")

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Process:
        self._spawned += 1
        log = self.logdir / f"{self._spawned:02d}-{name}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(  # noqa: S603 - our own commands
            command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO
        )
        handle.close()
        return Process(name, proc, log)

    def _cli(self, *args: str, stdin: str | None = None) -> None:
        result = subprocess.run(  # noqa: S603
            [*_sqlagent_command(), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO,
        )
        if result.returncode != 0:
            raise RuntimeError(f"sqlagent {' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    async def start_api(self) -> Process:
        if self.api is not None and self.api.alive():
            return self.api
        self.api_port = self.api_port or free_port()
        self.api = self.spawn("api", [*_sqlagent_command(), "serve", "--port", str(self.api_port)], self.env)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if not self.api.alive():
                    raise RuntimeError(f"the API exited:\n{self.api.tail()}")
                try:
                    if (await client.get(f"{self.base_url}/health")).status_code == 200:
                        return self.api
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the API did not start:\n{self.api.tail()}")

    def stop_api(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None

    async def start_worker(self, concurrency: int | None = None, processes: int = 1) -> Process:
        """`processes` worker processes (`worker` and `extra_workers`); returns once Celery says
        each is ready to consume."""
        self.stop_worker()
        args = ["worker"] + (["--concurrency", str(concurrency)] if concurrency else [])
        started = [
            self.spawn(f"worker-c{concurrency or 'default'}", [*_sqlagent_command(), *args], self.env)
            for _ in range(processes)
        ]
        self.worker, self.extra_workers = started[0], started[1:]
        deadline = time.monotonic() + 60
        waiting = list(started)
        while waiting and time.monotonic() < deadline:
            for process in list(waiting):
                if not process.alive():
                    raise RuntimeError(f"the worker exited:\n{process.tail()}")
                if _worker_ready(process.log):
                    waiting.remove(process)
            await asyncio.sleep(0.1)
        if waiting:
            raise RuntimeError(f"the worker did not become ready:\n{waiting[0].tail()}")
        return self.worker

    def stop_worker(self) -> None:
        for process in self.extra_workers:
            process.stop()
        self.extra_workers = []
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    async def flush(self) -> None:
        """Empty the queue and the attempt tables (users, tokens and schema snapshots stay)."""
        client = aioredis.Redis.from_url(self.redis_url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()
        conn = await asyncpg.connect(self.app_url)
        try:
            await conn.execute(f"TRUNCATE {APP_TABLES} CASCADE")
        finally:
            await conn.close()

    async def backend_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL backend connected to the app database (any client)."""
        conn = await asyncpg.connect(self.app_url)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", self.app_db)
        finally:
            await conn.close()
        found = {}
        for row in rows:
            with contextlib.suppress(FileNotFoundError):  # it ended meanwhile
                found[int(row["pid"])] = cpu_seconds(int(row["pid"]))
        return found

    def set_llm(self, default: dict[str, Any]) -> None:
        """What the LLM test server answers from now on (every question)."""
        assert self.llm is not None
        self.llm.update({"reset": True, "default": default})

    async def close(self) -> None:
        self.stop_worker()
        self.stop_api()
        if self.llm is not None:
            self.llm.stop()
        if self.redis_proc is not None:
            self.redis_proc.stop()
        if self.app_db:
            admin = await asyncpg.connect(PG_ADMIN_URL)
            try:
                for name in (self.app_db, self.target_db):
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


def _worker_ready(log: Path) -> bool:
    """Celery logs `celery@HOST ready.` once it consumes (inside a JSON line here)."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return False
    return any("celery@" in line and "ready." in line for line in text.splitlines())
