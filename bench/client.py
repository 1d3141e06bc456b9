"""A small HTTP/1.1 client on asyncio streams, with an SSE parser.

The load generator shares two cores with the server it measures, so it must be cheap: httpx spends
roughly as much CPU per request as the server's handler does. This client does keep-alive
requests with Content-Length or chunked bodies, which is all the sqlagent API sends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

TERMINAL = frozenset({"succeeded", "failed", "rejected", "timed_out", "cancelled"})


class HttpError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    def expect(self, *statuses: int) -> Response:
        if self.status not in statuses:
            raise HttpError(self.status, self.body)
        return self


class Connection:
    """One keep-alive connection. Not safe for concurrent requests (HTTP/1.1 has no multiplexing)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        return cls(reader, writer, f"{host}:{port}")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    def _send(self, method: str, path: str, headers: dict[str, str] | None, body: bytes | None) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))

    async def _head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return int(status_line.split(" ", 2)[1]), headers

    async def _body(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";", 1)[0], 16)
                if size == 0:
                    while (await self.reader.readline()) not in (b"\r\n", b""):
                        pass  # trailers
                    return
                piece = await self.reader.readexactly(size)
                await self.reader.readexactly(2)
                yield piece
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length:
                yield await self.reader.readexactly(length)
        else:
            while piece := await self.reader.read(65536):
                yield piece

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, json: Any = None
    ) -> Response:
        body = None if json is None else msgspec.json.encode(json)
        if body is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        self._send(method, path, headers, body)
        status, response_headers = await self._head()
        data = b"".join([piece async for piece in self._body(response_headers)])
        return Response(status, response_headers, data)

    async def stream(
        self, method: str, path: str, *, headers: dict[str, str] | None = None
    ) -> tuple[int, AsyncIterator[bytes]]:
        """The status and the body as it arrives. Consume the body to the end before the next request."""
        self._send(method, path, headers, None)
        status, response_headers = await self._head()
        return status, self._body(response_headers)


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    received: float = 0.0  # time.time() when its last byte arrived

    def json(self) -> Any:
        return msgspec.json.decode(self.data)


@dataclass
class SseParser:
    """Incremental `text/event-stream` parsing (LF or CRLF lines; comments dropped)."""

    _buffer: str = ""
    _pending: list[str] = field(default_factory=list)

    def feed(self, data: bytes) -> list[SseEvent]:
        now = time.time()
        self._buffer += data.decode().replace("\r\n", "\n")
        *blocks, self._buffer = self._buffer.split("\n\n")
        events = []
        for block in blocks:
            event = SseEvent(received=now)
            data_lines = []
            seen = False
            for line in block.split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                seen = True
                if name == "event":
                    event.event = value
                elif name == "data":
                    data_lines.append(value)
                elif name == "id":
                    event.id = value
            if seen:
                event.data = "\n".join(data_lines)
                events.append(event)
        return events
