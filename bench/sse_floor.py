"""Floors for SSE memory: a stream that sends one event and then waits, served by uvicorn the way
`sqlagent serve` runs the API — as a bare Litestar `ServerSentEvent` (the framework's cost), or
with `--raw` as a plain ASGI callable (uvicorn's own cost). What 2,000 of these take is what the
server and framework cost per stream before any sqlagent code (auth, database reads, relay):

    python -m bench.sse_floor --port P [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from litestar import Litestar, get
from litestar.response import ServerSentEvent, ServerSentEventMessage

_forever = asyncio.Event()  # never set: streams end when their client goes away


async def _events(attempt_id: str) -> AsyncIterator[ServerSentEventMessage]:
    yield ServerSentEventMessage(
        data=f'{{"id": "{attempt_id}", "seq": 1, "status": "queued"}}', event="status", id="1"
    )
    await _forever.wait()


@get("/events/{attempt_id:str}", media_type="text/event-stream")
async def events(attempt_id: str) -> ServerSentEvent:
    return ServerSentEvent(_events(attempt_id))


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same stream without a framework."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    attempt_id = scope["path"].rsplit("/", 1)[-1]
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    body = f'event: status\nid: 1\ndata: {{"id": "{attempt_id}", "seq": 1, "status": "queued"}}\n\n'
    await send({"type": "http.response.body", "body": body.encode(), "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--raw", action="store_true", help="a plain ASGI app instead of Litestar")
    args = parser.parse_args()
    app = raw_app if args.raw else Litestar(route_handlers=[events], logging_config=None, debug=False)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
