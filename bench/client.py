"""The benchmark's load client: many concurrent SSE streams on raw asyncio protocols.

Each stream is one `asyncio.Protocol` that writes a prepared HTTP request and
timestamps what comes back: first byte, every token, the end. It does not
parse JSON: counting the token marker in each received segment is all the
timing needs, which keeps the client far cheaper than the server it measures
(the benchmark prints the client's own CPU to show it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

# What marks one token on each path: chatapp's SSE, or the upstream's OpenAI chunks.
CHATAPP_TOKEN = b"event: token\n"
UPSTREAM_TOKEN = b'"delta": {"content": "'
CHATAPP_END = (b"event: done\n",)
UPSTREAM_END = (b"data: [DONE]",)
ERROR_MARKERS = (b"event: error\n",)


def chat_request(host: str, port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


@dataclass
class StreamTiming:
    opened_at: float = 0.0
    first_byte_at: float | None = None
    token_times: list[float] = field(default_factory=list)
    ended_at: float | None = None
    status: int | None = None
    complete: bool = False
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return self.token_times[0] - self.opened_at if self.token_times else None

    def gaps(self) -> list[float]:
        t = self.token_times
        return [b - a for a, b in itertools.pairwise(t)]


class StreamProtocol(asyncio.Protocol):
    def __init__(self, request: bytes, token_marker: bytes, end_markers: tuple[bytes, ...]) -> None:
        self.request = request
        self.marker = token_marker
        self.end_markers = end_markers
        self.timing = StreamTiming()
        self.tail = b""  # the end of the previous segment, for a marker split across two
        self.transport: asyncio.Transport | None = None
        self.finished: asyncio.Future[StreamTiming] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.timing.opened_at = time.monotonic()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        t = self.timing
        if t.first_byte_at is None:
            t.first_byte_at = now
            t.status = int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else 0
        window = self.tail + data
        count = window.count(self.marker) - self.tail.count(self.marker)
        if count:
            t.token_times.extend([now] * count)
        if any(m in window for m in ERROR_MARKERS):
            t.error = "error event"
        if any(m in window for m in self.end_markers):
            t.complete = True
            if self.transport is not None:
                self.transport.close()
        self.tail = window[-64:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.timing.ended_at = time.monotonic()
        if exc is not None and self.timing.error is None:
            self.timing.error = type(exc).__name__
        if not self.finished.done():
            self.finished.set_result(self.timing)

    def abort(self) -> float:
        """Hang up now, as a browser's Stop does; returns the moment it did."""
        at = time.monotonic()
        if self.transport is not None:
            self.transport.abort()
        return at


async def open_stream(
    host: str,
    port: int,
    request: bytes,
    token_marker: bytes,
    end_markers: tuple[bytes, ...],
    source: str | None = None,
) -> StreamProtocol:
    """Connect and send `request`; `source`: the local address to connect from (another loopback
    address is another client to the server's per-address limits)."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: StreamProtocol(request, token_marker, end_markers),
        host,
        port,
        local_addr=(source, 0) if source else None,
    )
    return protocol
