"""Request ids and the access log.

Every request gets an id: the caller's `X-Request-ID` when it is a sane token, else a new one. It
is echoed in the response, carried by every log line of the request (a context variable) and
handed to the worker with the task (a Celery message header), so one id follows a question from
the API's log to the worker's."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import request_id_var

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_QUIET = frozenset({"/health", "/ready", "/metrics"})  # probes and scrapes: no access line when fine

log = logging.getLogger("sqlagent.access")


def accept_or_generate(value: str | None) -> str:
    """The caller's id if it is at most 128 of [A-Za-z0-9._-] (it ends up in logs), else a new one."""
    if value and _VALID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _context(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def request_id(scope: Scope) -> str:
    """This request's id, settled on first use (also for requests no route matched)."""
    state = _context(scope)
    rid = state.get("request_id")
    if rid is None:
        raw = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)
        rid = state["request_id"] = accept_or_generate(raw.decode("latin-1") if raw is not None else None)
    return str(rid)


def started(scope: Scope) -> float | None:
    """`time.perf_counter()` when the request entered the middleware (None: no route matched)."""
    value = _context(scope).get("started")
    return float(value) if value is not None else None


def response_headers(message: Message) -> list[tuple[bytes, bytes]]:
    """A response start's headers as a list to append to (ASGI only promises an iterable)."""
    start = cast("dict[str, Any]", message)
    headers = start.get("headers")
    if not isinstance(headers, list):
        headers = start["headers"] = list(headers or ())
    return headers


def route_of(scope: Scope) -> str:
    """The route template (`/api/queries/{attempt_id}`), never the raw path: bounded label values."""
    return str(scope.get("path_template") or "unmatched")


class RequestIdMiddleware(ASGIMiddleware):
    """First in the chain, so authentication failures are logged with the id too. The id stays set
    for the rest of the request's task: uvicorn runs each request in a task of its own."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        _context(scope)["started"] = time.perf_counter()
        request_id_var.set(request_id(scope))
        await next_app(scope, receive, send)


async def finish_response(message: Message, scope: Scope) -> None:
    """`before_send`: echo the id and write the access line when the status is known."""
    if message["type"] != "http.response.start" or scope.get("type") != "http":
        return
    rid = request_id(scope)
    response_headers(message).append((b"x-request-id", rid.encode("latin-1")))
    status = int(message["status"])
    path = scope.get("path", "")
    if path in _QUIET and status < 400:
        return
    begun = started(scope)
    log.info(
        "%s %s %d",
        scope.get("method"),
        path,
        status,
        extra={
            "request_id": rid,
            "method": scope.get("method"),
            "route": route_of(scope),
            "status": status,
            "duration_ms": round((time.perf_counter() - begun) * 1000, 2) if begun is not None else None,
        },
    )
