"""A small blocking client for chatapp's streams, for the tests: raw HTTP in, timed SSE events out.

`SseDecoder` follows the WHATWG parsing rules (CR, LF and CRLF line ends, a
line ending split across reads, comments, several `data:` lines joined with
"\\n", dispatch on a blank line) and decodes UTF-8 incrementally, so a
character split between reads is decoded whole. `post_chat` records when each
event arrived, which lets tests check streaming, ordering and overlap; `ask`
builds the body it posts; `follow_stream` reattaches to an answer (`GET /api/streams/<id>`).
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None
    at: float

    def json(self) -> Any:
        return json.loads(self.data)


class SseDecoder:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._pending = ""
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.comments: list[str] = []

    def feed(self, chunk: bytes, at: float = 0.0) -> Iterator[SseEvent]:
        text = self._text.decode(chunk)
        if self._skip_lf:
            # The previous chunk ended in CR: an LF first here is the rest of that CRLF.
            self._skip_lf = False
            text = text.removeprefix("\n")
        buffer = self._pending + text
        start = i = 0
        while i < len(buffer):
            if buffer[i] in "\r\n":
                yield from self._line(buffer[start:i], at)
                if buffer[i] == "\r":
                    if i + 1 == len(buffer):
                        self._skip_lf = True
                    elif buffer[i + 1] == "\n":
                        i += 1
                start = i + 1
            i += 1
        self._pending = buffer[start:]

    def _line(self, line: str, at: float) -> Iterator[SseEvent]:
        if not line:
            if self._data:
                yield SseEvent(self._event or "message", "\n".join(self._data), self._id, at)
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            self.comments.append(line[1:].lstrip(" "))
            return
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value


@dataclass
class StreamResult:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    opened_at: float = 0.0
    first_byte_at: float | None = None
    closed_at: float = 0.0
    hung_up_at: float | None = None

    def named(self, name: str) -> list[SseEvent]:
        return [e for e in self.events if e.event == name]

    @property
    def names(self) -> list[str]:
        return [e.event for e in self.events]

    @property
    def text(self) -> str:
        return "".join(e.json()["text"] for e in self.named("token"))

    @property
    def done(self) -> dict[str, Any] | None:
        found = self.named("done")
        return found[-1].json() if found else None

    def error_json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.body)
        return body


def ask(model: str | None = None, content: str = "hi", **options: object) -> dict[str, Any]:
    """The body of `POST /api/chat` for one user message: to `model` (the server's default when
    None), with `options` such as `max_tokens` as they are."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], **options}
    if model is not None:
        body["model"] = model
    return body


def post_chat(
    base_url: str,
    body: dict[str, Any] | bytes,
    *,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
    stop_when: Callable[[StreamResult], bool] | None = None,
    hang_up_when: Callable[[], bool] | None = None,
    path: str = "/api/chat",
    source_address: str | None = None,
) -> StreamResult:
    """POST to `path` (an endpoint that streams an answer) and read the whole answer, or hang up
    early: when `stop_when(result)` says so after a read, or when `hang_up_when()` turns true
    (polled, for silent streams). `source_address`: the local address to connect from (another
    loopback address is another client)."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    return _exchange(
        base_url, "POST", path, payload, headers, timeout, stop_when, hang_up_when, source_address
    )


def follow_stream(
    base_url: str,
    stream_id: str,
    *,
    last_event_id: str | None = None,
    after: int | str | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
    stop_when: Callable[[StreamResult], bool] | None = None,
) -> StreamResult:
    """`GET /api/streams/<stream_id>`: reattach to an answer from the `Last-Event-ID` header
    and/or `?after=`, and read it to its end (or until `stop_when(result)`, then hang up)."""
    path = f"/api/streams/{stream_id}" + ("" if after is None else f"?after={after}")
    sent = dict(headers or {})
    if last_event_id is not None:
        sent["Last-Event-ID"] = last_event_id
    return _exchange(base_url, "GET", path, None, sent, timeout, stop_when, None)


def _exchange(
    base_url: str,
    method: str,
    path: str,
    payload: bytes | None,
    headers: dict[str, str],
    timeout: float,
    stop_when: Callable[[StreamResult], bool] | None,
    hang_up_when: Callable[[], bool] | None,
    source_address: str | None = None,
) -> StreamResult:
    host, port = base_url.removeprefix("http://").split(":")
    source = (source_address, 0) if source_address else None
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=source)
    opened = time.monotonic()
    conn.request(method, path, body=payload, headers=headers)
    sock = conn.sock
    response = conn.getresponse()
    result = StreamResult(
        status=response.status, headers={k.lower(): v for k, v in response.getheaders()}, opened_at=opened
    )
    decoder = SseDecoder()
    if hang_up_when is not None:
        threading.Thread(target=_hang_up_when, args=(hang_up_when, sock, result), daemon=True).start()
    try:
        while chunk := _read(response):
            now = time.monotonic()
            result.first_byte_at = result.first_byte_at or now
            result.body += chunk
            if result.status == 200:
                result.events.extend(decoder.feed(chunk, now))
            if stop_when is not None and stop_when(result):
                _hang_up(sock, result)
                break
    finally:
        result.comments = decoder.comments
        result.closed_at = time.monotonic()
        response.close()
        conn.close()
    return result


def _read(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read1(65536)
    except (OSError, http.client.HTTPException):
        return b""  # we hung up, or the server did


def _hang_up(sock: socket.socket, result: StreamResult) -> None:
    """Close hard, as a closed browser tab does."""
    result.hung_up_at = time.monotonic()
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _hang_up_when(condition: Callable[[], bool], sock: socket.socket, result: StreamResult) -> None:
    while not result.closed_at:
        if condition():
            _hang_up(sock, result)
            return
        time.sleep(0.005)
