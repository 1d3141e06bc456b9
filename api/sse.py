"""Server-sent events at a lower cost per open stream than Litestar's own.

A status stream is mostly idle, and one API process holds thousands (the target is 2,000 in
≤ 50 MiB), so what each costs while waiting matters. Litestar's `ServerSentEvent` streams through
an anyio task group (a cancel scope, a task handle and an event per stream), wraps the iterator
twice and hops to a worker thread once at the start of every stream. `EventStream` keeps
Litestar's part that matters here — the route, its OpenAPI entry (the handler is still annotated
`ServerSentEvent`), authentication, the error mapping before the first byte, the response headers
and `before_send` hooks — and replaces only the body loop: the request's own task sends the
chunks, and one small task waits for the client to hang up and tells the feed to stop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from litestar.response import ServerSentEvent
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse

if TYPE_CHECKING:
    from litestar import Litestar, Request
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.datastructures import Cookie
    from litestar.enums import MediaType
    from litestar.types import Receive, Send, TypeEncodersMap


class Feed(Protocol):
    """Encoded SSE messages, and a way to make `messages()` end early."""

    def messages(self) -> AsyncIterator[bytes]: ...

    def hang_up(self) -> None:
        """The client is gone: end `messages()` as soon as it next looks."""


class EventStream(ServerSentEvent):
    def __init__(self, feed: Feed) -> None:
        super().__init__(b"")  # Litestar's headers and media type; the body comes from `feed`
        self.feed = feed

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        return _FeedResponse(
            feed=self.feed,
            background=self.background or background,
            content_length=0,
            cookies=self.cookies if cookies is None else itertools.chain(self.cookies, cookies),
            encoded_headers=encoded_headers,
            encoding=self.encoding,
            headers={**headers, **self.headers} if headers is not None else self.headers,
            is_head_response=is_head_response,
            media_type="text/event-stream",
            status_code=self.status_code or status_code,
        )


class _FeedResponse(ASGIStreamingResponse):
    __slots__ = ("feed",)

    def __init__(self, *, feed: Feed, **kwargs: Any) -> None:
        super().__init__(iterator=feed.messages(), **kwargs)
        self.feed = feed

    async def send_body(self, send: Send, receive: Receive) -> None:
        listener = asyncio.create_task(self._await_hang_up(receive))
        messages = self.iterator
        try:
            async for chunk in messages:
                body = chunk if isinstance(chunk, bytes) else chunk.encode()
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            listener.cancel()
            if isinstance(messages, AsyncIterator) and hasattr(messages, "aclose"):
                await messages.aclose()

    async def _await_hang_up(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.feed.hang_up()
                return
