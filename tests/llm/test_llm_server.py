"""The scripted OpenAI-compatible test server itself: script semantics, the real openai client
against it, and its subprocess mode."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest
from support.llm_server import LlmServer, LlmServerProcess, load_gold_csv

from worker.pipeline.generate import Conversation, LlmClient, LlmConfig

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "llm_server.py"


def _post(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _chat(url: str, *messages: tuple[str, str]) -> tuple[int, Any]:
    body = {"model": "m", "messages": [{"role": role, "content": content} for role, content in messages]}
    return _post(f"{url}/v1/chat/completions", body)


def _content(payload: Any) -> str:
    return payload["choices"][0]["message"]["content"]


def test_completion_shape() -> None:
    with LlmServer({"questions": {"q": "SELECT 1"}}) as server:
        status, payload = _chat(server.url, ("system", "s"), ("user", "q"))
    assert status == 200
    assert payload["object"] == "chat.completion" and payload["id"].startswith("chatcmpl-")
    assert isinstance(payload["created"], int) and payload["model"] == "m"
    [choice] = payload["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": "SELECT 1"}
    usage = payload["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_the_real_openai_client_parses_it() -> None:
    with LlmServer({"questions": {"hello": {"sql": "SELECT 'hi'", "explanation": "greets"}}}) as server:
        for base_url in (server.base_url, server.url):  # /v1/chat/completions and /chat/completions
            async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0) as client:
                completion = await client.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": "hello"}], temperature=0
                )
            assert json.loads(completion.choices[0].message.content or "") == {
                "sql": "SELECT 'hi'",
                "explanation": "greets",
            }
            assert completion.model == "gpt-test" and completion.usage is not None
        assert [r["path"] for r in server.requests()] == ["/v1/chat/completions", "/chat/completions"]


def test_matching_rounds_substring_and_default() -> None:
    script = {
        "questions": {
            "exact question": ["first", "second"],
            "orders": "about orders",
            "orders by month": "about orders by month",
        },
        "default": "nobody knows",
    }
    with LlmServer(script) as server:
        assert _content(_chat(server.url, ("user", "  exact question "))[1]) == "first"
        assert (
            _content(
                _chat(
                    server.url,
                    ("user", "exact question"),
                    ("assistant", "first"),
                    ("user", "exact question\n\nerror"),
                )[1]
            )
            == "second"
        )
        # past the end of the list: the last response again
        three_rounds = [
            ("user", "exact question"),
            ("assistant", "a"),
            ("user", "r"),
            ("assistant", "b"),
            ("user", "r"),
        ]
        assert _content(_chat(server.url, *three_rounds)[1]) == "second"
        # substring match: the longest key contained in the question wins
        assert (
            _content(_chat(server.url, ("user", "Show orders by month for 2024"))[1])
            == "about orders by month"
        )
        assert _content(_chat(server.url, ("user", "count orders"))[1]) == "about orders"
        _, payload = _chat(server.url, ("user", "something else"))
        assert _content(payload) == "nobody knows"
        recorded = server.requests()
        assert [r["round"] for r in recorded[:3]] == [0, 1, 2]
        assert recorded[-1]["matched"] is None and recorded[3]["matched"] == "orders by month"


def test_builtin_default_is_unanswerable_and_gold_mode(tmp_path: Path) -> None:
    csv_file = tmp_path / "gold.csv"
    csv_file.write_text('question,query\n"How many, really?","SELECT count(*) FROM t;"\n')
    gold = load_gold_csv(csv_file)
    assert gold == {"How many, really?": "SELECT count(*) FROM t;"}
    with LlmServer({"gold": {"Top customer?": "SELECT name FROM c LIMIT 1"}}) as server:
        server.add_gold(gold)
        assert json.loads(_content(_chat(server.url, ("user", "Top customer?"))[1])) == {
            "sql": "SELECT name FROM c LIMIT 1",
            "explanation": "gold SQL",
        }
        assert json.loads(_content(_chat(server.url, ("user", "How many, really?"))[1]))["sql"] == (
            "SELECT count(*) FROM t;"
        )
        assert json.loads(_content(_chat(server.url, ("user", "unknown"))[1]))["sql"] is None


def test_errors_retry_after_and_fail_times() -> None:
    script = {
        "questions": {
            "limited": {"status": 429, "retry_after": 1.5, "message": "slow down"},
            "flaky": {"fail_times": 2, "status": 503, "then": "SELECT 1"},
        }
    }
    with LlmServer(script) as server:
        request = urllib.request.Request(
            f"{server.base_url}/chat/completions",
            data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "limited"}]}).encode(),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 429
        assert caught.value.headers["Retry-After"] == "1.5"
        assert caught.value.headers["retry-after-ms"] == "1500"
        assert json.loads(caught.value.read())["error"]["message"] == "slow down"
        statuses = [_chat(server.url, ("user", "flaky"))[0] for _ in range(4)]
        assert statuses == [503, 503, 200, 200]
        server.reset()  # counters and recorded requests forgotten
        assert server.requests() == []
        assert _chat(server.url, ("user", "flaky"))[0] == 503


def test_control_endpoints_and_api_key() -> None:
    with LlmServer(api_key="sk-right") as server:
        assert _post(f"{server.url}/_script", {"questions": {"late": "SELECT 'late'"}}) == (200, {"ok": True})
        assert _post(f"{server.url}/_script", {"bogus": 1})[0] == 400
        body = {"model": "m", "messages": [{"role": "user", "content": "late"}]}
        status, payload = _post(f"{server.base_url}/chat/completions", body)
        assert status == 401 and payload["error"]["code"] == "invalid_api_key"
        status, payload = _post(
            f"{server.base_url}/chat/completions", body, {"Authorization": "Bearer sk-right"}
        )
        assert status == 200 and _content(payload) == "SELECT 'late'"
        with urllib.request.urlopen(f"{server.url}/_requests?question=late", timeout=5) as response:
            recorded = json.loads(response.read())
        assert [r["authorization"] for r in recorded] == [None, "Bearer sk-right"]
        assert _post(f"{server.url}/_script", {"reset": True}) == (200, {"ok": True})
        status, payload = _post(
            f"{server.base_url}/chat/completions", body, {"Authorization": "Bearer sk-right"}
        )
        assert json.loads(_content(payload))["sql"] is None


async def test_subprocess_mode() -> None:
    with LlmServerProcess({"questions": {"from file": "SELECT 'file'"}}, api_key="sk-proc") as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        server.add("added later", {"fail_times": 1, "status": 500, "then": {"sql": "SELECT 'late'"}})
        client = LlmClient(LlmConfig(server.base_url, "sk-proc", "m", 5.0, 2), backoff_base_s=0.001)
        try:
            for question, sql in [("from file", "SELECT 'file'"), ("added later", "SELECT 'late'")]:
                conversation = Conversation.start(
                    dialect="sqlite", schema_text="t(a)", examples=[], question=question
                )
                assert (await client.complete(conversation)).sql == sql
        finally:
            await client.close()
        assert len(server.calls("added later")) == 2
        assert server.calls("from file")[0]["authorization"] == "Bearer sk-proc"


def test_command_line_prints_the_base_url_first(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"questions": {"cli": "SELECT 'cli'"}}))
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--script", str(script)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        status, payload = _chat(base_url.removesuffix("/v1"), ("user", "cli"))
        assert status == 200 and _content(payload) == "SELECT 'cli'"
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
        process.stdout.close()  # type: ignore[union-attr]
