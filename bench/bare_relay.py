"""The least a relay can do per token under gunicorn's gevent worker: the benchmark's reference.

A WSGI app of a few dozen lines that does only the work every relay must do:
open a socket to the bench upstream, send the request, and for each read of
the answer find the content deltas, decode them with orjson, and yield one SSE
`token` frame per delta (the same frames chatapp writes). No Flask, no SDK, no
HTTP client: it relies on the bench upstream's exact framing (one chunk per
event, `Connection: close`), so it is not a product, only a measurement. What
it costs per token is what Python, gevent, gunicorn and this machine's system
calls cost; chatapp's figure minus this one is what chatapp itself adds.

Run by the benchmark as `gunicorn -c python:bench.bare_relay -w N bench.bare_relay:app` with
`BARE_RELAY_UPSTREAM=host:port`: this module is also its gunicorn config, with chatapp's
settings that matter for the measurement (and without chatapp's hooks).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import orjson

UPSTREAM = os.environ.get("BARE_RELAY_UPSTREAM", "127.0.0.1:9100")

# gunicorn settings, as in gunicorn.conf.py.
worker_class = "gevent"
worker_connections = 1000
keepalive = 75
control_socket_disable = True


def app(environ: dict[str, Any], start_response: Callable[..., object]) -> Iterator[bytes]:
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"ok"])
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    return relay(body)


def relay(body: bytes) -> Iterator[bytes]:
    host, port = UPSTREAM.rsplit(":", 1)
    upstream = socket.create_connection((host, int(port)))
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        upstream.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body)
        )
        seq = 0
        pending = b""
        while data := upstream.recv(65536):
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            frames = []
            for line in lines:
                if not line.startswith(b"data: {"):
                    continue  # headers, chunk sizes, blank lines, [DONE]
                choices = orjson.loads(line[6:]).get("choices")
                text = choices[0]["delta"].get("content") if choices else None
                if text:
                    seq += 1
                    payload = orjson.dumps({"text": text})
                    frames.append(b"event: token\nid: bare:%d\ndata: %s\n\n" % (seq, payload))
            if frames:
                yield b"".join(frames)
            if b"data: [DONE]" in data:
                yield b'event: done\ndata: {"finish_reason": "stop"}\n\n'
                return
    finally:
        upstream.close()
