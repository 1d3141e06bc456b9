"""LlmClient against the real scripted HTTP server (tests/support/llm_server.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from support.llm_server import LlmServer

from shared.pipeline_errors import LlmUnavailable
from worker.pipeline.generate import (
    PLACEHOLDER_API_KEY,
    Conversation,
    LlmClient,
    LlmConfig,
    ReplyUnparseable,
)

MakeClient = Callable[..., LlmClient]


def _conversation(question: str) -> Conversation:
    return Conversation.start(dialect="sqlite", schema_text="users(id, name)", examples=[], question=question)


async def test_success_counts_tokens_and_sends_the_conversation(
    llm_server: LlmServer, make_client: MakeClient
) -> None:
    question = "How many users are there?"
    llm_server.add(
        question,
        {
            "content": '{"sql": "SELECT count(*) FROM users;", "explanation": "counts users"}',
            "usage": {"prompt_tokens": 123, "completion_tokens": 45},
        },
    )
    conversation = _conversation(question)
    reply = await make_client().complete(conversation)
    assert reply.sql == "SELECT count(*) FROM users"
    assert reply.explanation == "counts users"
    assert reply.raw == '{"sql": "SELECT count(*) FROM users;", "explanation": "counts users"}'
    assert (reply.prompt_tokens, reply.completion_tokens) == (123, 45)
    [call] = llm_server.calls(question)
    assert call["path"] == "/v1/chat/completions"
    assert call["model"] == "test-model"
    assert call["temperature"] == 0
    assert call["messages"] == conversation.messages
    assert call["messages"][-1] == {"role": "user", "content": question}
    assert call["authorization"] == "Bearer sk-test-key"
    assert "response_format" not in call["body"] and not call["body"].get("stream")


async def test_placeholder_key_when_none(llm_server: LlmServer, make_client: MakeClient) -> None:
    llm_server.add("keyless?", "SELECT 1")
    reply = await make_client(api_key=None).complete(_conversation("keyless?"))
    assert reply.sql == "SELECT 1"
    assert llm_server.calls("keyless?")[0]["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


async def test_usage_absent_means_zero_tokens(llm_server: LlmServer, make_client: MakeClient) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "SELECT 1"}, "finish_reason": "stop"}
        ],
    }
    llm_server.add("no usage", {"raw_body": json.dumps(body), "content_type": "application/json"})
    reply = await make_client().complete(_conversation("no usage"))
    assert (reply.sql, reply.prompt_tokens, reply.completion_tokens) == ("SELECT 1", 0, 0)


async def test_two_server_errors_then_an_answer(llm_server: LlmServer, make_client: MakeClient) -> None:
    llm_server.add(
        "flaky", {"fail_times": 2, "status": 500, "then": {"sql": "SELECT 2", "explanation": "two"}}
    )
    reply = await make_client(max_retries=3).complete(_conversation("flaky"))
    assert (reply.sql, reply.explanation) == ("SELECT 2", "two")
    assert len(llm_server.calls("flaky")) == 3


async def test_retry_after_is_honoured(llm_server: LlmServer, make_client: MakeClient) -> None:
    llm_server.add("busy", {"fail_times": 1, "status": 429, "retry_after": 0.4, "then": "SELECT 3"})
    started = time.monotonic()
    reply = await make_client(backoff_base_s=0.001).complete(_conversation("busy"))
    elapsed = time.monotonic() - started
    assert reply.sql == "SELECT 3"
    assert len(llm_server.calls("busy")) == 2
    assert 0.4 <= elapsed < 3


async def test_retry_after_is_capped(llm_server: LlmServer) -> None:
    llm_server.add("very busy", {"fail_times": 1, "status": 429, "retry_after": 30, "then": "SELECT 4"})
    config = LlmConfig(llm_server.base_url, "k", "m", 5.0, 1)
    client = LlmClient(config, backoff_base_s=0.001, retry_after_cap_s=0.05)
    try:
        started = time.monotonic()
        assert (await client.complete(_conversation("very busy"))).sql == "SELECT 4"
        assert time.monotonic() - started < 2
    finally:
        await client.close()


async def test_always_unavailable_gives_up_after_max_retries(
    llm_server: LlmServer, make_client: MakeClient
) -> None:
    llm_server.add("down", {"status": 503})
    with pytest.raises(LlmUnavailable) as caught:
        await make_client(max_retries=2).complete(_conversation("down"))
    assert len(llm_server.calls("down")) == 3
    assert caught.value.error_code == "LLM_SERVICE_UNAVAILABLE"
    assert "3 calls" in caught.value.detail and "HTTP 503" in caught.value.detail
    assert "sk-test-key" not in caught.value.detail


async def test_no_retries_means_one_call(llm_server: LlmServer, make_client: MakeClient) -> None:
    llm_server.add("down once", {"status": 502})
    with pytest.raises(LlmUnavailable, match="1 call; last failure: HTTP 502"):
        await make_client(max_retries=0).complete(_conversation("down once"))
    assert len(llm_server.calls("down once")) == 1


async def test_hang_times_out_then_retries_then_gives_up(
    llm_server: LlmServer, make_client: MakeClient
) -> None:
    llm_server.add("slow", {"delay_s": 3, "then": "SELECT 5"})
    started = time.monotonic()
    with pytest.raises(LlmUnavailable, match=r"timed out after 0\.2s"):
        await make_client(timeout_s=0.2, max_retries=1).complete(_conversation("slow"))
    assert time.monotonic() - started < 2
    assert len(llm_server.calls("slow")) == 2


async def test_gateway_timeout_once_then_answer(llm_server: LlmServer, make_client: MakeClient) -> None:
    llm_server.add("gateway", {"fail_times": 1, "status": 504, "then": "SELECT 6"})
    assert (await make_client().complete(_conversation("gateway"))).sql == "SELECT 6"
    assert len(llm_server.calls("gateway")) == 2


async def test_connection_dropped_is_retried(llm_server: LlmServer, make_client: MakeClient) -> None:
    llm_server.add("dropped", {"disconnect": True})
    with pytest.raises(LlmUnavailable, match="connection error"):
        await make_client(max_retries=1).complete(_conversation("dropped"))
    assert len(llm_server.calls("dropped")) == 2


async def test_connection_refused_is_unavailable() -> None:
    with LlmServer() as server:
        base_url = server.base_url  # the port is free again once the server stops
    client = LlmClient(LlmConfig(base_url, None, "m", 2.0, 1), backoff_base_s=0.001)
    try:
        with pytest.raises(LlmUnavailable, match="connection error"):
            await client.complete(_conversation("anyone?"))
    finally:
        await client.close()


async def test_wrong_key_fails_at_once_without_leaking_it() -> None:
    with LlmServer({"questions": {"q": "SELECT 1"}}, api_key="sk-right") as server:
        client = LlmClient(LlmConfig(server.base_url, "sk-wrong-secret", "m", 5.0, 3), backoff_base_s=0.001)
        try:
            with pytest.raises(LlmUnavailable) as caught:
                await client.complete(_conversation("q"))
            assert "rejected the API key (401)" in caught.value.detail
            assert "sk-wrong-secret" not in caught.value.detail
            assert len(server.calls("q")) == 1
            assert server.calls("q")[0]["authorization"] == "Bearer sk-wrong-secret"
        finally:
            await client.close()
        right = LlmClient(LlmConfig(server.base_url, "sk-right", "m", 5.0, 0))
        try:
            assert (await right.complete(_conversation("q"))).sql == "SELECT 1"
        finally:
            await right.close()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, "answered 404 for model 'test-model'"),
        (400, "rejected the request (400): scripted failure 400"),
        (403, "refused access (403)"),
        (422, "rejected the request (422)"),
    ],
)
async def test_other_client_errors_fail_at_once(
    llm_server: LlmServer, make_client: MakeClient, status: int, expected: str
) -> None:
    question = f"client error {status}"
    llm_server.add(question, {"status": status})
    with pytest.raises(LlmUnavailable) as caught:
        await make_client().complete(_conversation(question))
    assert expected in caught.value.detail
    assert len(llm_server.calls(question)) == 1


async def test_not_an_openai_endpoint(llm_server: LlmServer, make_client: MakeClient) -> None:
    llm_server.add("html", {"raw_body": "<html>welcome</html>"})
    with pytest.raises(LlmUnavailable, match="SQLAGENT_LLM_BASE_URL"):
        await make_client().complete(_conversation("html"))
    assert len(llm_server.calls("html")) == 1


async def test_temperature_refused_is_dropped(llm_server: LlmServer, make_client: MakeClient) -> None:
    message = "Unsupported value: 'temperature' does not support 0 with this model."
    llm_server.add("reasoner", {"fail_times": 1, "status": 400, "message": message, "then": "SELECT 7"})
    client = make_client()
    assert (await client.complete(_conversation("reasoner"))).sql == "SELECT 7"
    first, second = llm_server.calls("reasoner")
    assert first["temperature"] == 0 and "temperature" not in second["body"]
    llm_server.add("later", "SELECT 8")
    await client.complete(_conversation("later"))
    assert "temperature" not in llm_server.calls("later")[0]["body"]


async def test_unparseable_reply_carries_the_reply(llm_server: LlmServer, make_client: MakeClient) -> None:
    llm_server.add(
        "gibberish", {"content": "I like turtles.", "usage": {"prompt_tokens": 9, "completion_tokens": 3}}
    )
    with pytest.raises(ReplyUnparseable) as caught:
        await make_client().complete(_conversation("gibberish"))
    reply = caught.value.reply
    assert reply is not None
    assert (reply.raw, reply.sql, reply.prompt_tokens, reply.completion_tokens) == (
        "I like turtles.",
        None,
        9,
        3,
    )
    assert caught.value.rule == "unparseable_reply"
    assert len(llm_server.calls("gibberish")) == 1  # a model answer, not a transport failure


async def test_repair_round_goes_back_to_the_server(llm_server: LlmServer, make_client: MakeClient) -> None:
    question = "Which users signed up last week?"
    llm_server.add(
        question,
        {"sql": "SELECT * FROM user", "explanation": "first try"},
        {"sql": "SELECT * FROM users", "explanation": "fixed"},
    )
    client = make_client()
    conversation = _conversation(question)
    first = await client.complete(conversation)
    assert first.sql == "SELECT * FROM user"
    conversation.add_reply(first)
    conversation.add_repair(question, "no such table: user")
    second = await client.complete(conversation)
    assert (second.sql, second.explanation) == ("SELECT * FROM users", "fixed")
    calls = llm_server.calls(question)
    assert [c["round"] for c in calls] == [0, 1]
    assert calls[1]["messages"][-1]["content"].startswith(question)
    assert "no such table: user" in calls[1]["messages"][-1]["content"]


async def test_backoff_is_bounded_exponential_with_jitter() -> None:
    client = LlmClient(
        LlmConfig("http://127.0.0.1:9/v1", None, "m", 1.0, 3), backoff_base_s=0.5, backoff_cap_s=8
    )
    await client.close()
    for call, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = {client._delay(call, None) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert client._delay(0, 3.0) == 3.0
    assert client._delay(0, 1000.0) == 30.0  # Retry-After capped
    assert client._delay(0, -5.0) == 0.0
