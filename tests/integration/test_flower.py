"""Flower shows every attempt's task: `celery -A worker.celery_app flower` against a real worker on
Redis, with basic auth from FLOWER_BASIC_AUTH; its HTTP API lists `attempts.run` with the attempt id
as the only argument, its state and runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.stack import REPO, Stack, base_env, cli, free_port, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("flower")]

AUTH = ("ops", "flower-secret")


@pytest.fixture(scope="module")
def flower_stack(request, tmp_path_factory, redis_url, llm) -> Iterator[tuple[Stack, str]]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("flower")
    stack = Stack(
        env=base_env(
            SQLAGENT_DATABASE_URL=f"sqlite:///{tmp}/app.db",
            SQLAGENT_BROKER_URL=redis_url,
            SQLAGENT_LLM_BASE_URL=llm.base_url,
        ),
        workdir=tmp,
    )
    assert cli("migrate", env=stack.env).returncode == 0
    stack.create_user("alice", "alice-password")
    port = free_port()
    log = (tmp / "flower.log").open("wb")
    # Flower reads its own settings from FLOWER_* and the broker from our lazy Celery config.
    flower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
        ],
        env={**stack.env, "FLOWER_BASIC_AUTH": f"{AUTH[0]}:{AUTH[1]}"},
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert flower.poll() is None, (tmp / "flower.log").read_text()
            try:
                if httpx.get(f"{base}/healthcheck", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Flower did not start"
            time.sleep(0.1)
        stack.start_api()
        stack.start_worker()
        yield stack, base
    finally:
        flower.terminate()
        flower.wait(10)
        log.close()
        stack.stop()
        if request.session.testsfailed:
            print((tmp / "flower.log").read_text()[-3000:], stack.logs())


def _task_of(base: str, attempt_id: str) -> dict[str, Any] | None:
    tasks = httpx.get(f"{base}/api/tasks", params={"taskname": "attempts.run"}, auth=AUTH, timeout=10)
    assert tasks.status_code == 200, tasks.text
    for task in tasks.json().values():
        if attempt_id in str(task.get("args")):
            return dict(task)
    return None


def test_flower_lists_each_attempt_task_with_state_and_runtime(flower_stack, llm) -> None:  # type: ignore[no-untyped-def]
    stack, base = flower_stack
    question = "How many products? (flower)"
    llm.add(question, {"sql": "SELECT count(*) AS n FROM products", "explanation": "count"})
    with stack.client("alice", "alice-password") as client:
        attempt_id = client.post("/api/queries", json={"question": question}).json()["id"]
        assert wait_terminal(client, attempt_id)["status"] == "succeeded"
    deadline = time.monotonic() + 20
    while (task := _task_of(base, attempt_id)) is None or task.get("state") != "SUCCESS":
        assert time.monotonic() < deadline, f"Flower never showed the task as done: {task}"
        time.sleep(0.2)
    assert task["name"] == "attempts.run"
    assert ast.literal_eval(task["args"]) == [attempt_id]  # the attempt id and nothing else
    assert ast.literal_eval(task["kwargs"]) == {}
    assert isinstance(task["runtime"], float) and task["runtime"] >= 0
    assert task["received"] and task["started"] and task["succeeded"]
    assert "sqlagent_request_id" not in str(task)  # a header, not an argument

    workers = httpx.get(f"{base}/api/workers", params={"refresh": "1"}, auth=AUTH, timeout=20)
    assert workers.status_code == 200 and workers.json(), workers.text


def test_flower_api_needs_the_basic_auth_credentials(flower_stack) -> None:  # type: ignore[no-untyped-def]
    _, base = flower_stack
    assert httpx.get(f"{base}/api/tasks", timeout=10).status_code == 401
    assert httpx.get(f"{base}/api/tasks", auth=("ops", "wrong"), timeout=10).status_code == 401
    assert httpx.get(f"{base}/api/tasks", auth=AUTH, timeout=10).status_code == 200
