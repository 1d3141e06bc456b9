"""Logging: one JSON object per line in production, readable lines in the demo.

Every line logged while a request or an attempt is being handled carries its `request_id` and
`attempt_id` (context variables, set by the API's request-id middleware and by the worker's task;
`asyncio` tasks and `run_coroutine_threadsafe` carry them along). Credentials that slip into a
message — a password in a URL, a bearer token — are masked before the line is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

import msgspec

request_id_var: ContextVar[str | None] = ContextVar("sqlagent_request_id", default=None)
attempt_id_var: ContextVar[str | None] = ContextVar("sqlagent_attempt_id", default=None)
_CONTEXT = (("request_id", request_id_var), ("attempt_id", attempt_id_var))

# Unknown extra values (Celery adds some) are written as their str() instead of failing the line.
_encoder = msgspec.json.Encoder(enc_hook=str)
# Record attributes that are not extra fields (uvicorn adds `color_message`, the message with ANSI codes).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {
    "message",
    "asctime",
    "color_message",
}
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
_BEARER = re.compile(r"(\bbearer\s+)[^\s'\"]+", re.IGNORECASE)


def redact(text: str) -> str:
    """Mask the password of `scheme://user:password@host` URLs and bearer tokens."""
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1***@", text)
    # Most lines (every access line) contain neither: the substring tests cost far less than a regex.
    if "bearer" in text.lower():
        text = _BEARER.sub(r"\1***", text)
    return text


def current_request_id() -> str | None:
    return request_id_var.get()


@contextmanager
def log_context(*, request_id: str | None = None, attempt_id: str | None = None) -> Iterator[None]:
    """Tag every line logged inside with these ids (a worker thread runs one task after another,
    so the values are reset on the way out)."""
    tokens = [
        (request_id_var, request_id_var.set(request_id)),
        (attempt_id_var, attempt_id_var.set(attempt_id)),
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds the current `request_id` / `attempt_id` to a record (an explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT:
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return _encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """`time level logger: message [request_id=… attempt_id=…]` — for people (the demo)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = " ".join(
            f"{name}={getattr(record, name)}" for name, _ in _CONTEXT if getattr(record, name, None)
        )
        return f"{line} [{ids}]" if ids else line

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    # The documented switches of logging's "Optimization" section: neither formatter writes the
    # caller's file and line, thread or process, and finding the caller walks the stack on every
    # record — a visible share of an access line's cost at thousands of requests per second.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # On the handler, not a logger: it sees every record that propagates to the root.
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "openai", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
