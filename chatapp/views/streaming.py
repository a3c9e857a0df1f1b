"""What every streaming endpoint shares: admission (the load rules) and the SSE response."""

from __future__ import annotations

import socket
from typing import Any, cast

from flask import Response, current_app, request

from ..errors import ApiError
from ..llm.base import ChatRequest
from ..protocol import ErrorCode
from ..relay import Relay, RelayLimits
from ..state import app_state
from ..streams import ClientBusy, Release, ShuttingDown, WorkerFull

SSE_HEADERS = {
    # no-transform: proxies must not compress or rewrite the stream (gzip buffers it).
    "Cache-Control": "no-cache, no-transform",
    # nginx buffers proxied responses unless told not to, which would hold every token back.
    "X-Accel-Buffering": "no",
}


def client_address() -> str:
    return request.remote_addr or "-"


def admit() -> Release:
    """Count this request's stream in, or answer 503/429: before the body is read, which is the
    cheapest moment to refuse. Call the returned release once if no response is made."""
    try:
        return app_state(current_app).streams.admit(client_address())
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


def client_socket() -> socket.socket | None:
    """gunicorn's worker exposes the client socket; the relay watches it for a close."""
    return cast("socket.socket | None", request.environ.get("gunicorn.socket"))


def relay_for(chat_request: ChatRequest, **options: Any) -> Relay:
    """The relay of one request's answer, with this app's limits, its registry of live streams and
    the client's socket to watch; `options` go to `Relay` (an id, an observer, start fields)."""
    state = app_state(current_app)
    limits = RelayLimits(heartbeat_s=state.settings.heartbeat_s, max_stream_s=state.settings.max_stream_s)
    return Relay(
        state.backend.stream(chat_request),
        limits,
        registry=state.streams,
        client_socket=client_socket(),
        client=client_address(),
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
