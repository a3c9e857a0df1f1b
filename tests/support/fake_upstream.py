"""A local OpenAI-compatible server for the tests: real HTTP on 127.0.0.1, scripted misbehaviour.

It streams `POST /v1/chat/completions` exactly as OpenAI does (the chunks of
harness/openai_chunks.py: a role chunk, content deltas, a finish chunk, a usage
chunk with empty `choices` when `stream_options.include_usage` is asked, then
`data: [DONE]`), over HTTP/1.1
chunked encoding with TCP_NODELAY, so each write reaches the client as its own
segment. Each test registers a `Behaviour` and gets a model name to request:
the upstream answers that model with that behaviour, so tests running side by
side do not interfere. Every request is recorded: its body, when it opened, and
when and how it ended (completed, or the client closed the connection).

Run it alone for manual tries: `python -m tests.support.fake_upstream --port 9000`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import select
import socket
import ssl
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.openai_chunks import DONE, CompletionChunks

DEFAULT_TOKENS = (
    "Hello",
    "!",
    " Here",
    " is",
    " a",
    " line",
    ".\n",
    "Café",
    " naïve",
    " 中文",
    "字符",
    " 🚀",
    "🧪",
    "\n\n",
    "- item",
    " one\n",
    "- item",
    " two",
    "\r\nEnd",
    ".",
)

# Longest a silent upstream stays silent before giving up on its own.
SILENCE_CAP_S = 120.0

# A long delta is made as it is written, this much at a time (never held whole in the tests' process).
LONG_DELTA_PIECE = b"x" * (64 * 1024)


@dataclass
class Behaviour:
    """How the upstream answers one model name. The defaults stream DEFAULT_TOKENS at once."""

    tokens: tuple[str, ...] = DEFAULT_TOKENS
    reasoning: tuple[str, ...] = ()
    finish_reason: str = "stop"
    first_token_delay_s: float = 0.0
    token_interval_s: float = 0.0
    # Answer this HTTP status with an OpenAI-style error body instead of streaming.
    status: int | None = None
    retry_after: str | None = None
    # Write each SSE event in several pieces, or cut multi-byte characters between writes.
    split_events: bool = False
    split_utf8: bool = False
    # After this many content chunks: close the socket without ending the body,
    # send a chunk that is not JSON, or end the body cleanly with no finish and no [DONE].
    drop_after: int | None = None
    malformed_after: int | None = None
    incomplete_after: int | None = None
    reject_stream_options: bool = False
    # Send headers, then nothing at all until the client goes away; or not even headers.
    silent: bool = False
    silent_before_headers: bool = False
    # How the body is framed: "chunked" (as OpenAI, vLLM, Ollama do), or "close" (no length, the
    # end of the body is the end of the connection); gzip compresses it, each event flushed.
    framing: str = "chunked"
    gzip: bool = False
    # The model the chunks say answered, when not the one asked for (llama.cpp's server names its own).
    served_model: str | None = None
    # After the role chunk, one content delta of this many characters ("x"), made as it is written,
    # 64 KiB a write (then the tokens as usual); with `delta_never_ends`, its JSON and its line never
    # close: a line without end, cut off there if the client has not hung up by then.
    long_delta_chars: int | None = None
    delta_never_ends: bool = False

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass
class RequestRecord:
    model: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    peer: tuple[str, int] | None = None  # the client's address: the same one means a reused connection
    opened_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    outcome: str | None = None  # "completed", "client_closed", "dropped", "status"
    sent_bytes: int = 0  # of the body, as written before any framing or compression
    ended: threading.Event = field(default_factory=threading.Event)

    def end(self, outcome: str) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic()
            self.outcome = outcome
            self.ended.set()


class ClientGone(Exception):
    """The client closed the connection while the upstream was answering."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections when hundreds arrive at once.
    request_queue_size = 4096

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        # Clients hanging up is what half of the tests do on purpose; other errors are bugs.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeUpstream:
    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        """`tls`: a server-side context, to answer https:// (its `_wait` pauses then cannot peek, so
        behaviours with pauses are for plain HTTP)."""
        self._behaviours: dict[str, Behaviour] = {}
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self._server = _QuietServer(("127.0.0.1", port), _make_handler(self))
        self._scheme = "https" if tls else "http"
        if tls:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-upstream", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def model(self, behaviour: Behaviour | None = None, name: str = "fake") -> str:
        """Register a behaviour; requests for the returned model name get it."""
        model = f"{name}-{next(self._names)}"
        with self._lock:
            self._behaviours[model] = behaviour or Behaviour()
        return model

    def set_behaviour(self, model: str, behaviour: Behaviour) -> None:
        """Change how an already registered model answers from the next request on."""
        with self._lock:
            self._behaviours[model] = behaviour

    def model_names(self) -> list[str]:
        with self._lock:
            return list(self._behaviours)

    def behaviour(self, model: str) -> Behaviour:
        with self._lock:
            return self._behaviours.get(model) or Behaviour()

    def record(
        self, model: str, body: dict[str, Any], headers: dict[str, str], peer: tuple[str, int] | None = None
    ) -> RequestRecord:
        record = RequestRecord(model=model, body=body, headers=headers, peer=peer)
        with self._lock:
            self.requests.append(record)
        return record

    def requests_for(self, model: str) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.model == model]

    def wait_for_request(self, model: str, timeout: float = 5.0) -> RequestRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests_for(model)
            if found:
                return found[-1]
            time.sleep(0.01)
        raise AssertionError(f"the upstream got no request for {model} in {timeout} s")


def _make_handler(upstream: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.upstream = upstream
    return Handler


class _Handler(BaseHTTPRequestHandler):
    upstream: FakeUpstream
    protocol_version = "HTTP/1.1"
    _chunked = True
    _gzip: zlib._Compress | None = None
    _record: RequestRecord | None = None

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            models = [{"id": m, "object": "model"} for m in self.upstream.model_names()]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_json(404, _error_body("Not found", "not_found"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _error_body("Not found", "not_found"))
            return
        model = str(body.get("model", ""))
        behaviour = self.upstream.behaviour(model)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = self._record = self.upstream.record(model, body, headers, peer=self.client_address)
        try:
            self._answer(behaviour, body, record)
        except ClientGone:
            record.end("client_closed")
            self.close_connection = True

    # -- answering ------------------------------------------------------------------

    def _answer(self, b: Behaviour, body: dict[str, Any], record: RequestRecord) -> None:
        if b.reject_stream_options and "stream_options" in body:
            self._send_json(400, _error_body("Unrecognized request argument supplied: stream_options", None))
            record.end("status")
            return
        if b.status is not None:
            headers = {"Retry-After": b.retry_after} if b.retry_after else {}
            self._send_json(b.status, _error_body(f"Scripted failure {b.status}", str(b.status)), headers)
            record.end("status")
            return

        if b.silent_before_headers:
            self._wait(SILENCE_CAP_S)
            self._drop(record)
            return
        self._chunked = b.framing == "chunked"
        self._gzip = zlib.compressobj(wbits=31) if b.gzip else None
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        if self._chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        if self._gzip:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()

        if b.silent:
            self._wait(SILENCE_CAP_S)
            self._drop(record)
            return

        chunks = CompletionChunks(b.served_model or str(body.get("model", "")))
        self._event(b, chunks.role())
        self._wait(b.first_token_delay_s)
        if b.long_delta_chars is not None:
            self._long_delta(b.long_delta_chars, ends=not b.delta_never_ends)
            if b.delta_never_ends:
                self._end_body(record)
                return
        for text in b.reasoning:
            self._event(b, chunks.reasoning(text))
            self._wait(b.token_interval_s)
        for i, text in enumerate(b.tokens):
            if i == b.drop_after:
                self._drop(record)
                return
            if i == b.malformed_after:
                self._write(b'data: {"choices": [{"delta": {"content": "oops"\n\n')
            if i == b.incomplete_after:
                self._end_body(record)
                return
            if i:
                self._wait(b.token_interval_s)
            self._event(b, chunks.content(text))
        self._event(b, chunks.finish(b.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
            self._event(b, chunks.usage(prompt, len(b.tokens) + len(b.reasoning)))
        self._write(DONE)
        self._end_body(record)

    def _event(self, b: Behaviour, frame: bytes) -> None:
        if b.split_utf8:
            cuts = [i for i in range(1, len(frame)) if frame[i] & 0xC0 == 0x80]  # inside a character
            self._write_pieces(frame, cuts[::2] or [len(frame) // 2])
        elif b.split_events:
            self._write_pieces(frame, [len(frame) // 3, 2 * len(frame) // 3, len(frame) - 1])
        else:
            self._write(frame)

    def _long_delta(self, chars: int, *, ends: bool) -> None:
        self._write(b'data: {"choices": [{"index": 0, "delta": {"content": "')
        for start in range(0, chars, len(LONG_DELTA_PIECE)):
            left = chars - start
            self._write(LONG_DELTA_PIECE if left >= len(LONG_DELTA_PIECE) else LONG_DELTA_PIECE[:left])
        if ends:
            self._write(b'"}, "finish_reason": null}]}\n\n')

    def _write_pieces(self, frame: bytes, cuts: list[int]) -> None:
        start = 0
        for cut in [*cuts, len(frame)]:
            if cut > start:
                self._write(frame[start:cut])
                # A pause, so the pieces arrive as separate reads rather than one.
                time.sleep(0.002)
                start = cut

    def _write(self, data: bytes, *, last: bool = False) -> None:
        if self._record is not None:
            self._record.sent_bytes += len(data)
        if self._gzip:
            data = self._gzip.compress(data) + self._gzip.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
        try:
            if not self._chunked:
                self.wfile.write(data)
            elif data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            if last and self._chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            raise ClientGone from None

    def _end_body(self, record: RequestRecord) -> None:
        self._write(b"", last=True)
        record.end("completed")

    def _drop(self, record: RequestRecord) -> None:
        """Cut the connection without ending the chunked body: the client sees a broken stream."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        record.end("dropped")

    def _wait(self, seconds: float) -> None:
        """Sleep, but notice at once when the client closes the connection."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], left)
            if not readable:
                return
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                raise ClientGone from None
            if not peeked:
                raise ClientGone
            time.sleep(min(left, 0.01))  # data waiting (a pipelined request): not a close

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _error_body(message: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    upstream = FakeUpstream(args.port).start()
    print(f"fake upstream on {upstream.base_url}", flush=True)
    upstream._thread.join()


if __name__ == "__main__":
    main()
