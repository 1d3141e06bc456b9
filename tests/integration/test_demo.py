"""`sqlagent demo`: embedded defaults (SQLite, in-process worker over kombu's memory transport,
no Redis, no LLM), as `make demo` runs it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from integration.conftest import demo_rows
from support.stack import Stack, base_env, free_port, wait_terminal

from shared.demo import load_examples

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[tuple[Stack, str]]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("demo")
    stack = Stack(env=base_env(), workdir=tmp, port=free_port())
    process = stack.spawn("demo", "demo", "--port", str(stack.port))
    deadline = time.monotonic() + 60
    token = None
    try:
        while time.monotonic() < deadline:
            match = re.search(r"API token: (\S+)", process.output())
            if match:
                token = match.group(1)
                try:
                    if httpx.get(f"{stack.base_url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            assert process.proc.poll() is None, process.output()
            time.sleep(0.1)
        assert token, process.output()
        yield stack, token
    finally:
        stack.stop()


def test_demo_prints_login_token_and_examples(demo) -> None:  # type: ignore[no-untyped-def]
    stack, _ = demo
    out = stack.processes[0].output()
    assert "demo / demo" in out and "curl" in out and "sqlagent ask" in out
    assert (stack.workdir / "var" / "demo.db").exists()


def test_knowledge_question_answers_without_an_llm(demo) -> None:  # type: ignore[no-untyped-def]
    stack, _ = demo
    example = load_examples()[0]
    with stack.client("demo", "demo") as client:
        attempt_id = client.post("/api/queries", json={"question": example.question}).json()["id"]
        final = wait_terminal(client, attempt_id)
        assert final["status"] == "succeeded", final
        assert final["rounds"] == 0 and final["sql"] == example.sql
        rows = client.get(f"/api/queries/{attempt_id}/results", params={"page_size": 1000}).json()["rows"]
    assert rows == demo_rows(example.sql)


def test_novel_question_fails_with_llm_not_configured(demo) -> None:  # type: ignore[no-untyped-def]
    stack, token = demo
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        attempt_id = client.post(
            "/api/queries", json={"question": "What is the airspeed of a swallow?"}
        ).json()["id"]
        final = wait_terminal(client, attempt_id)
    assert final["status"] == "failed" and final["error_code"] == "LLM_NOT_CONFIGURED"
    assert "SQLAGENT_LLM_BASE_URL" in final["error_detail"]


def test_demo_cookie_is_not_secure_on_plain_http(demo) -> None:  # type: ignore[no-untyped-def]
    stack, _ = demo
    resp = httpx.post(f"{stack.base_url}/api/auth/login", json={"username": "demo", "password": "demo"})
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=28800" in cookie
    assert "secure" not in cookie.replace("samesite", "")
