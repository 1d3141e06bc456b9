"""The LLM client decodes the completion itself (not through the SDK's response model): odd but
well-formed answers behave as before — no choices is a wrong endpoint, a choice without text an
unparseable reply, usage that is not a count is zero tokens."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from support.llm_server import LlmServer

from shared.pipeline_errors import LlmUnavailable
from worker.pipeline.generate import Conversation, LlmClient, ReplyUnparseable

MakeClient = Callable[..., LlmClient]


def _conversation(question: str) -> Conversation:
    return Conversation.start(dialect="sqlite", schema_text="users(id, name)", examples=[], question=question)


def _json(body: object) -> dict[str, object]:
    return {"raw_body": json.dumps(body), "content_type": "application/json"}


@pytest.mark.parametrize(
    "body", [{}, {"choices": []}, {"choices": None}, [1, 2], "text", {"error": {"message": "hi"}}]
)
async def test_json_without_choices_is_not_an_openai_endpoint(
    llm_server: LlmServer, make_client: MakeClient, body: object
) -> None:
    llm_server.add("odd", _json(body))
    with pytest.raises(LlmUnavailable, match="no completion choices"):
        await make_client().complete(_conversation("odd"))
    assert len(llm_server.calls("odd")) == 1


@pytest.mark.parametrize(
    "choices",
    [
        [{"message": {"content": None}}],
        [{"message": {"content": ["parts"]}}],
        [{"message": None}],
        [{}],
        ["x"],
        "not a list",
    ],
)
async def test_a_choice_without_text_is_an_unparseable_reply(
    llm_server: LlmServer, make_client: MakeClient, choices: object
) -> None:
    llm_server.add("empty", _json({"choices": choices, "usage": {"prompt_tokens": 4}}))
    with pytest.raises(ReplyUnparseable) as caught:
        await make_client().complete(_conversation("empty"))
    reply = caught.value.reply
    assert reply is not None and reply.raw == "" and reply.prompt_tokens == 4


async def test_usage_that_is_not_a_count_is_zero(llm_server: LlmServer, make_client: MakeClient) -> None:
    choices = [{"message": {"content": "SELECT 1"}}]
    llm_server.add(
        "usage", _json({"choices": choices, "usage": {"prompt_tokens": "7", "completion_tokens": True}})
    )
    reply = await make_client().complete(_conversation("usage"))
    assert (reply.sql, reply.prompt_tokens, reply.completion_tokens) == ("SELECT 1", 0, 0)
    llm_server.add("no-usage", _json({"choices": choices, "usage": "n/a"}))
    reply = await make_client().complete(_conversation("no-usage"))
    assert (reply.prompt_tokens, reply.completion_tokens) == (0, 0)
