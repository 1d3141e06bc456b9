"""Structured logs: one JSON object per line, the request and attempt ids from context, readable
text for the demo, credentials masked, and request ids accepted only when sane."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from api.requestid import accept_or_generate
from shared.logs import ContextFilter, JsonFormatter, TextFormatter, log_context, redact, request_id_var


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("sqlagent.test-logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream, handler
    logger.handlers.clear()


def test_json_lines_carry_the_context_ids(captured) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    handler.setFormatter(JsonFormatter())
    logger.info("outside")
    with log_context(request_id="req-1", attempt_id="att-1"):
        logger.info("inside %s", "args", extra={"status": 202})
        logger.info("explicit", extra={"request_id": "req-explicit"})
    logger.info("after")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 4
    assert "request_id" not in lines[0] and "attempt_id" not in lines[0]
    assert lines[1]["msg"] == "inside args" and lines[1]["status"] == 202
    assert (lines[1]["request_id"], lines[1]["attempt_id"]) == ("req-1", "att-1")
    assert lines[1]["level"] == "info" and lines[1]["logger"] == "sqlagent.test-logs" and lines[1]["ts"]
    assert lines[2]["request_id"] == "req-explicit"
    assert "request_id" not in lines[3]


def test_text_lines_are_readable_and_name_the_ids(captured) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    handler.setFormatter(TextFormatter())
    with log_context(attempt_id="att-2"):
        logger.warning("slow answer")
    line = stream.getvalue().strip()
    assert "WARNING" in line and "sqlagent.test-logs: slow answer [attempt_id=att-2]" in line
    assert not line.startswith("{")


def test_credentials_are_masked_in_messages_and_tracebacks(captured) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    handler.setFormatter(JsonFormatter())
    logger.info("broker redis://:hunter2@redis:6379/0 and postgresql://app:s3cret@db/app")
    try:
        raise RuntimeError("Authorization: Bearer tok_abcdef123456 rejected")
    except RuntimeError:
        logger.exception("failed")
    text = stream.getvalue()
    for secret in ("hunter2", "s3cret", "tok_abcdef123456"):
        assert secret not in text
    first = json.loads(text.splitlines()[0])
    assert first["msg"] == "broker redis://:***@redis:6379/0 and postgresql://app:***@db/app"
    assert redact("no credentials in https://example.org/a:b") == "no credentials in https://example.org/a:b"


def test_unusual_extra_values_do_not_break_a_line(captured) -> None:  # type: ignore[no-untyped-def]
    logger, stream, handler = captured
    handler.setFormatter(JsonFormatter())
    logger.info("odd", extra={"thing": object(), "color_message": "\x1b[36mx\x1b[0m"})
    entry = json.loads(stream.getvalue())
    assert entry["thing"].startswith("<object object") and "color_message" not in entry


def test_the_context_follows_a_coroutine_to_another_threads_loop_and_is_reset() -> None:
    """How a Celery worker thread hands its attempt to the runtime's loop: the ids go along."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def seen() -> str | None:
        return request_id_var.get()

    try:
        with log_context(request_id="req-9", attempt_id="att-9"):
            assert asyncio.run_coroutine_threadsafe(seen(), loop).result(5) == "req-9"
        assert request_id_var.get() is None
        assert asyncio.run_coroutine_threadsafe(seen(), loop).result(5) is None
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("abc-123_X.y", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("has space", False),
        ("new\nline", False),
        ("", False),
        (None, False),
        ("ünïcode", False),
    ],
)
def test_request_ids_are_accepted_only_when_sane(header: str | None, kept: bool) -> None:
    rid = accept_or_generate(header)
    assert (rid == header) is kept
    assert 1 <= len(rid) <= 128 and all(c.isalnum() or c in "._-" for c in rid)
