from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.llm_server import LlmServer
from support.stack import Stack, base_env, cli

from shared.demo import DEMO_DB_PATH


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmServer]:
    with LlmServer({"default": {"sql": None, "explanation": "not scripted"}}) as server:
        yield server


def demo_rows(sql: str) -> list[list[object]]:
    conn = sqlite3.connect(f"file:{DEMO_DB_PATH}?mode=ro&immutable=1", uri=True)
    try:
        return [list(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def _start(tmp: Path, database_url: str, redis_url: str, llm: LlmServer) -> Stack:
    env = base_env(
        SQLAGENT_DATABASE_URL=database_url,
        SQLAGENT_BROKER_URL=redis_url,
        SQLAGENT_LLM_BASE_URL=llm.base_url,
        SQLAGENT_LLM_MODEL="test-model",
    )
    assert cli("migrate", env=env).returncode == 0
    stack = Stack(env=env, workdir=tmp)
    stack.create_user("alice", "alice-password")
    stack.create_user("bob", "bob-password")
    stack.create_user("root", "root-password", admin=True)
    stack.start_api()
    stack.start_worker()
    return stack


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory, pg_app_url, redis_url, llm) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """API + Celery worker processes on Redis, over each app database."""
    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    database_url = f"sqlite:///{tmp}/app.db" if request.param == "sqlite" else pg_app_url
    stack = _start(tmp, database_url, redis_url, llm)
    try:
        yield stack
    finally:
        stack.stop()
        if request.session.testsfailed:
            print(stack.logs())
