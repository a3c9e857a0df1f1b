"""A fast OpenAI-compatible upstream for the benchmark: gevent, pre-encoded chunks, thousands of streams.

It answers `POST /v1/chat/completions` with `stream=True` exactly as OpenAI does
(harness/openai_chunks.py: role chunk, content chunks, finish chunk, usage chunk,
`data: [DONE]`), over HTTP/1.1 chunked encoding, each frame encoded once per
stream. The model name sets the pace:
`bench-ttft<ms>-tps<tokens per second>-len<tokens>[-drop<n>]` (with `-drop<n>`
the connection breaks after n tokens), `bench-silent` (headers, then nothing), or
`bench-fail` (HTTP 500). A reader greenlet per connection notices the client's close the
moment it arrives and records it under the request's last message (its tag);
`GET /stats` returns `{"opens": {tag: t}, "closes": {tag: t}}` in monotonic time (CLOCK_MONOTONIC is
system-wide, so the load client can subtract its own monotonic times).

Run: `python -m bench.upstream --port 9100`.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

from harness.openai_chunks import DONE, CompletionChunks  # noqa: E402

MODEL = re.compile(r"bench-ttft(\d+)-tps(\d+)-len(\d+)(?:-drop(\d+))?")
TOKENS = (" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", ".")

opens: dict[str, float] = {}
closes: dict[str, float] = {}


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def read_request(conn: socket.socket) -> tuple[str, str, bytes] | None:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, body = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(body) < length:
        data = conn.recv(65536)
        if not data:
            return None
        body += data
    return method, path, body


def respond_json(conn: socket.socket, payload: object) -> None:
    data = json.dumps(payload).encode()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(data), data)
    )


def watch_close(conn: socket.socket, tag: str) -> None:
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
    closes[tag] = time.monotonic()


def stream(conn: socket.socket, request: dict[str, Any]) -> None:
    model = request.get("model", "")
    if model == "bench-fail":
        body = b'{"error": {"message": "scripted failure", "type": "server_error"}}'
        conn.sendall(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return
    tag = str(request["messages"][-1]["content"])
    opens[tag] = time.monotonic()
    watcher = gevent.spawn(watch_close, conn, tag)
    # Connection: close, as each connection serves one stream here (its reader watches for the close).
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
        b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
    )
    if model == "bench-silent":
        watcher.join()
        return
    match = MODEL.fullmatch(model)
    ttft_ms, tps, length = (int(g) for g in match.groups()[:3]) if match else (0, 1000, 50)
    drop_at = int(match.group(4)) if match and match.group(4) else None
    interval = 1.0 / tps
    chunks = CompletionChunks(model, id="chatcmpl-bench", created=0)
    conn.sendall(http_chunk(chunks.role()))
    start = time.monotonic() + ttft_ms / 1000
    frames = [http_chunk(chunks.content(t)) for t in TOKENS]
    for i in range(length):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        if watcher.dead:
            return
        if i == drop_at:  # the connection breaks mid-answer
            conn.shutdown(socket.SHUT_RDWR)
            return
        conn.sendall(frames[i % len(frames)])
    tail = http_chunk(chunks.finish("stop")) + http_chunk(chunks.usage(5, length)) + http_chunk(DONE)
    conn.sendall(tail + b"0\r\n\r\n")
    watcher.join()  # keep-alive is not needed for the benchmark: wait for the client to close


def handle(conn: socket.socket, _address: object) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        request = read_request(conn)
        if request is None:
            return
        method, path, body = request
        if method == "GET" and path.startswith("/stats"):
            respond_json(conn, {"opens": opens, "closes": closes})
            return
        stream(conn, json.loads(body))
    except OSError:
        pass
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fast OpenAI-compatible upstream for the benchmark.")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = StreamServer(("127.0.0.1", args.port), handle, backlog=4096)
    print(f"bench upstream on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
