"""What every streaming endpoint shares: admission (the load rules) and the SSE response."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any, cast

from flask import Response, current_app, request

from .errors import ApiError
from .llm.base import ChatRequest
from .protocol import ErrorCode
from .state import app_state
from .streaming.delivery import DeliveryWatch
from .streaming.greenlets import hang_up
from .streaming.registry import ClientBusy, Release, ShuttingDown, StreamRegistry, WorkerFull
from .streaming.relay import Relay, RelayLimits
from .streaming.resumable import AnswerJob

SSE_HEADERS = {
    # no-transform: proxies must not compress or rewrite the stream (gzip buffers it).
    "Cache-Control": "no-cache, no-transform",
    # nginx buffers proxied responses unless told not to, which would hold every token back.
    "X-Accel-Buffering": "no",
}


def client_address() -> str:
    return request.remote_addr or "-"


def admit() -> Release:
    """Count this request's stream in, in this worker and across all of them, or answer 503/429:
    before the body is read, which is the cheapest moment to refuse. Call the returned release
    once when the stream has ended, or if none is started."""
    state = app_state(current_app)
    client = client_address()
    try:
        here = state.streams.admit(client)
        try:
            everywhere = state.coordinator.admit(client)
        except BaseException:
            here()
            raise
    except ShuttingDown:
        raise ApiError(
            503, ErrorCode.SHUTTING_DOWN, "This server is restarting. Try again in a moment.", retry_after_s=2
        ) from None
    except WorkerFull:
        raise ApiError(
            503, ErrorCode.SERVER_BUSY, "The server is at capacity. Try again in a moment.", retry_after_s=5
        ) from None
    except ClientBusy:
        raise ApiError(
            429,
            ErrorCode.TOO_MANY_STREAMS,
            "Too many answers are streaming for you at once. Stop one, or wait for one to finish.",
            retry_after_s=5,
        ) from None

    def release() -> None:
        everywhere()
        here()

    return release


def client_socket() -> socket.socket | None:
    """gunicorn's worker exposes the client socket; the relay watches it for a close."""
    return cast("socket.socket | None", request.environ.get("gunicorn.socket"))


def relay_for(chat_request: ChatRequest, *, resumable: bool = False, **options: Any) -> Relay:
    """The relay of one request's answer, with this app's limits and its registry of live streams;
    `options` go to `Relay` (an id, an observer, start fields). A stream for this one client
    ends when its socket closes; a resumable one goes on (answer_jobs)."""
    state = app_state(current_app)
    limits = RelayLimits(heartbeat_s=state.settings.heartbeat_s, max_stream_s=state.settings.max_stream_s)
    return Relay(
        state.backend.stream(chat_request),
        limits,
        registry=state.streams,
        client_socket=client_socket(),
        client=client_address(),
        resumable=resumable,
        **options,
    )


def sse_response(relay: Relay, release: Release) -> Response:
    response = Response(
        relay.frames(),
        status=200,
        headers=SSE_HEADERS,
        content_type="text/event-stream; charset=utf-8",
    )
    # The server closes every response it started, even one whose body never ran.
    response.call_on_close(release)
    return response


def answer_response(job: AnswerJob) -> Response:
    """The response that started a resumable answer: its first reader."""
    response = Response(
        job.first_reader(), status=200, headers=SSE_HEADERS, content_type="text/event-stream; charset=utf-8"
    )
    response.call_on_close(job.response_closed)
    return response


def follow_response(frames: Iterator[bytes]) -> Response:
    """A response that follows an answer it does not run (`answer_log`, `coordination`): a reader
    that stops taking bytes is cut after the write timeout, as a stream's own client is."""
    reader = _Reader(frames, app_state(current_app).streams, client_socket())
    return Response(
        reader.body(), status=200, headers=SSE_HEADERS, content_type="text/event-stream; charset=utf-8"
    )


class _Reader:
    def __init__(self, frames: Iterator[bytes], registry: StreamRegistry, sock: socket.socket | None) -> None:
        self._frames = frames
        self._registry = registry
        self._socket = sock
        self._writing_since: float | None = None
        self._delivery = DeliveryWatch(sock)

    def body(self) -> Iterator[bytes]:
        self._registry.add_reader(self)
        try:
            for chunk in self._frames:
                self._writing_since = time.monotonic()
                yield chunk
                self._writing_since = None
        finally:
            self._registry.remove_reader(self)
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()

    def write_stalled_s(self, now: float) -> float:
        since = self._writing_since
        if since is None:
            return 0.0
        if self._delivery.took_bytes():
            self._writing_since = since = now
        return now - since

    def hang_up(self) -> None:
        if self._socket is not None:
            hang_up(self._socket)
