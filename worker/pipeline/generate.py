"""SQL generation: the LLM client, with our own bounded retries and error mapping.

`LlmClient.complete(conversation)` makes one model answer out of up to `max_retries + 1` HTTP calls:
429, 408, 5xx, timeouts (`timeout_s` bounds each whole call) and connection errors are retried
with exponential backoff and equal jitter (or the server's `Retry-After`, capped); other 4xx and
answers that are not chat completions fail at once. Either way the failure is `LlmUnavailable`
with a detail that names the cause (status code or error class), never the key. A 400 that
mentions `temperature` (models that refuse one) is asked again once without it, and the client
stops sending it. Transport retries are not
rounds (SPEC AttemptRead `rounds`): a round is one `complete()` that returned an answer.

The prompt lives in `prompt.py`, reply parsing in `reply.py`; both are re-exported here.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from typing import Any

import msgspec
import openai

from shared.pipeline_errors import LlmUnavailable
from worker.pipeline.prompt import Conversation, Example, build_system_prompt, repair_message
from worker.pipeline.reply import Reply, ReplyUnparseable, parse_reply

__all__ = [
    "Conversation",
    "Example",
    "LlmClient",
    "LlmConfig",
    "Reply",
    "ReplyUnparseable",
    "build_system_prompt",
    "parse_reply",
    "repair_message",
]

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
# openai 3.x refuses to construct a client without a key; keyless local servers ignore this one.
PLACEHOLDER_API_KEY = "sk-no-key"
# What `chat.completions.create` asks of the request: the API key as a bearer token.
_OPTIONS: Any = {"security": {"bearer_auth": True}}


class LlmConfig(msgspec.Struct, frozen=True):
    base_url: str | None  # None: OpenAI's own endpoint
    api_key: str | None  # None: keyless server (a placeholder is sent)
    model: str
    timeout_s: float  # per HTTP call, whole call included (connect to last byte)
    max_retries: int  # transport retries per answer: up to max_retries + 1 calls


class _Retryable(Exception):
    """One failed call worth retrying: `reason` goes into the final detail."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class LlmClient:
    def __init__(
        self,
        config: LlmConfig,
        *,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 8.0,
        retry_after_cap_s: float = 30.0,
    ) -> None:
        self.config = config
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._retry_after_cap_s = retry_after_cap_s
        self._send_temperature = True
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url or OPENAI_BASE_URL,
            api_key=config.api_key or PLACEHOLDER_API_KEY,
            timeout=config.timeout_s,
            max_retries=0,  # we retry ourselves: bounded, logged, mapped to LlmUnavailable
        )

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> LlmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def complete(self, conversation: Conversation) -> Reply:
        """One model answer for the conversation as it stands (the caller appends it).

        Raises `LlmUnavailable` when the endpoint cannot give one, and `ReplyUnparseable` (a guard
        rejection, carrying the `Reply`) when the answer is neither JSON nor SQL."""
        calls = self.config.max_retries + 1
        last = "no call made"
        for call in range(calls):
            try:
                response = await self._call(conversation.messages)
            except _Retryable as failure:
                last = failure.reason
                if call + 1 >= calls:
                    break
                delay = self._delay(call, failure.retry_after)
                log.warning(
                    "LLM call %d/%d failed (%s); retrying in %.2fs", call + 1, calls, failure.reason, delay
                )
                await asyncio.sleep(delay)
                continue
            return _to_reply(response)
        noun = "call" if calls == 1 else "calls"
        raise LlmUnavailable(self._scrub(f"the LLM endpoint failed {calls} {noun}; last failure: {last}"))

    def _delay(self, call: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self._retry_after_cap_s))
        ceiling = min(self._backoff_cap_s, self._backoff_base_s * 2**call)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography

    async def _call(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """One HTTP call; retryable failures raise `_Retryable`, the rest `LlmUnavailable`.
        Returns the completion as decoded JSON."""
        body: dict[str, Any] = {"model": self.config.model, "messages": messages}
        if self._send_temperature:
            body["temperature"] = 0
        try:
            async with asyncio.timeout(self.config.timeout_s):
                # The SDK's own request path (auth, status errors, timeouts) without
                # `chat.completions.create`'s body transform, which walks every message against
                # the SDK's TypedDicts to change nothing in ours, nor its response model: the
                # bytes, decoded here (~0.6 ms of CPU per call less in all).
                raw = await self._client.post("/chat/completions", body=body, cast_to=bytes, options=_OPTIONS)
        except (TimeoutError, openai.APITimeoutError):
            raise _Retryable(f"timed out after {self.config.timeout_s:g}s") from None
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else type(exc).__name__
            raise _Retryable(f"connection error ({cause})") from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status == 429 or status == 408 or status >= 500:
                raise _Retryable(f"HTTP {status}", _retry_after(exc.response.headers)) from None
            message = _server_message(exc)
            if status == 400 and "temperature" in message.lower() and self._send_temperature:
                # Some models (reasoning ones) refuse any temperature: ask again without it.
                self._send_temperature = False
                return await self._call(messages)
            raise LlmUnavailable(self._scrub(self._rejection(status, message))) from None
        except openai.APIResponseValidationError:
            raise _Retryable("malformed response") from None
        except openai.OpenAIError as exc:
            raise LlmUnavailable(self._scrub(f"the LLM client failed: {type(exc).__name__}")) from None
        try:
            response = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            response = None
        if not isinstance(response, dict) or not response.get("choices"):
            # an HTML page or `{}` with 200: a wrong base URL, not a passing glitch
            raise LlmUnavailable(
                "the LLM endpoint's answer has no completion choices; is SQLAGENT_LLM_BASE_URL an "
                "OpenAI-compatible API (usually ending in /v1)?"
            )
        return response

    def _rejection(self, status: int, message: str) -> str:
        suffix = f": {message}" if message else ""
        if status == 401:
            return "the LLM endpoint rejected the API key (401); check SQLAGENT_LLM_API_KEY"
        if status == 403:
            return f"the LLM endpoint refused access (403){suffix}"
        if status == 404:
            return (
                f"the LLM endpoint answered 404 for model {self.config.model!r}; check SQLAGENT_LLM_MODEL "
                f"and SQLAGENT_LLM_BASE_URL{suffix}"
            )
        return f"the LLM endpoint rejected the request ({status}){suffix}"

    def _scrub(self, text: str) -> str:
        key = self.config.api_key
        return text.replace(key, "***") if key else text


def _field(value: object, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _to_reply(response: dict[str, Any]) -> Reply:
    choices = response["choices"]
    content = _field(_field(choices[0] if isinstance(choices, list) else None, "message"), "content")
    raw = content if isinstance(content, str) else ""
    usage = response.get("usage")
    prompt_tokens = _count(_field(usage, "prompt_tokens"))
    completion_tokens = _count(_field(usage, "completion_tokens"))
    try:
        sql, explanation = parse_reply(raw)
    except ReplyUnparseable as exc:
        exc.reply = Reply(None, "", raw, prompt_tokens, completion_tokens)
        raise
    return Reply(
        sql=sql,
        explanation=explanation,
        raw=raw,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else body if isinstance(body, str) else None
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())
    return message[:300] + ("…" if len(message) > 300 else "")


def _retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None if absent."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.timestamp() - time.time()
