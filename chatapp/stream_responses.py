"""The HTTP side of a stream, for the views that start or follow one: admission under this
request's client, a relay wired to this request's socket, and the `text/event-stream` response."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from flask import Response, current_app, request

from .llm.base import ChatRequest
from .state import AppState, app_state
from .streaming.admission import Release, admitted
from .streaming.relay import Relay, RelayLimits
from .streaming.resumable import FollowReader

SSE_HEADERS = {
    # no-transform: proxies must not compress or rewrite the stream (gzip buffers it).
    "Cache-Control": "no-cache, no-transform",
    # nginx buffers proxied responses unless told not to, which would hold every token back.
    "X-Accel-Buffering": "no",
}


def client_address() -> str:
    return request.remote_addr or "-"


def client_socket() -> socket.socket | None:
    """gunicorn's worker exposes the client socket; the relay watches it for a close."""
    return cast("socket.socket | None", request.environ.get("gunicorn.socket"))


@contextmanager
def admitted_stream() -> Iterator[Release]:
    """Count this request's stream in, in this worker and across all of them, or raise `Refused`
    (503/429, errors.py): call it before the body is read. The block hands the release to the
    response it builds; if the block raises, the stream is given back."""
    state = app_state(current_app)
    with admitted(state.admission, state.coordinator, client_address()) as release:
        yield release


def _relay(state: AppState, chat_request: ChatRequest, sock: socket.socket | None, **options: Any) -> Relay:
    limits = RelayLimits(heartbeat_s=state.settings.heartbeat_s, max_stream_s=state.settings.max_stream_s)
    return Relay(
        state.backend.stream(chat_request),
        limits,
        registry=state.streams,
        client_socket=sock,
        client=client_address(),
        **options,
    )


def stream_response(chat_request: ChatRequest, release: Release) -> Response:
    """One client's stream: it ends when the client's socket closes."""
    relay = _relay(app_state(current_app), chat_request, client_socket())
    response = _event_stream(relay.frames())
    # The server closes every response it started, even one whose body never ran.
    response.call_on_close(release)
    return response


def answer_response(chat_request: ChatRequest, release: Release, **options: Any) -> Response:
    """Start a resumable answer (resumable.py) and answer with its first reader; `options` go to
    `Relay` (its id, its observer, the start event's fields). The answer runs to its end whatever
    happens to this response."""
    state = app_state(current_app)
    relay = _relay(state, chat_request, None, **options)  # no socket: it outlives the connection
    job = state.answers.start(relay, release, client_socket())
    response = _event_stream(job.first_reader())
    response.call_on_close(job.response_closed)
    return response


def follow_response(frames: Iterator[bytes]) -> Response:
    """Follow an answer this request does not run: cut when it stops reading, as a stream's own
    client is."""
    reader = FollowReader(frames, app_state(current_app).streams, client_socket())
    return _event_stream(reader.body())


def _event_stream(body: Iterator[bytes]) -> Response:
    return Response(body, status=200, headers=SSE_HEADERS, content_type="text/event-stream; charset=utf-8")
