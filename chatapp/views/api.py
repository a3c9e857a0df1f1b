"""The JSON/SSE API (docs/api.md): `POST /api/chat` streams one answer; `.../stop` ends one."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..errors import ApiError, Code
from ..limits import chat_rate_limit, limiter
from ..relay import Relay, RelayLimits
from ..security import reject_cross_site
from ..state import app_state
from ..streams import ClientBusy, WorkerFull
from ..validation import parse_chat_request, require_json_content_type

bp = Blueprint("api", __name__, url_prefix="/api")

SSE_HEADERS = {
    # no-transform: proxies must not compress or rewrite the stream (gzip buffers it).
    "Cache-Control": "no-cache, no-transform",
    # nginx buffers proxied responses unless told not to, which would hold every token back.
    "X-Accel-Buffering": "no",
}


@bp.before_request
def _only_from_this_site() -> None:
    reject_cross_site(request)


@bp.post("/chat")
@limiter.limit(chat_rate_limit)
def chat() -> Response:
    state = app_state(current_app)
    settings = state.settings
    if state.streams.draining:
        raise ApiError(
            503, Code.SHUTTING_DOWN, "This server is restarting. Try again in a moment.", retry_after_s=2
        )
    require_json_content_type(request.mimetype)
    # Past the byte limit this raises 413 (Content-Length) or stops early (chunked; see create_app).
    chat_request = parse_chat_request(request.get_data(cache=False), settings)
    client = request.remote_addr or "-"
    _admit(client)
    relay = Relay(
        state.backend.stream(chat_request),
        RelayLimits(heartbeat_s=settings.heartbeat_s, max_stream_s=settings.max_stream_s),
        registry=state.streams,
        # gunicorn's worker exposes the client socket; the relay watches it for a close.
        client_socket=request.environ.get("gunicorn.socket"),
        client=client,
    )
    response = Response(
        relay.frames(),
        status=200,
        headers=SSE_HEADERS,
        content_type="text/event-stream; charset=utf-8",
    )
    # The server closes every response it started, even one whose body never ran.
    response.call_on_close(lambda: state.streams.release(client))
    return response


def _admit(client: str) -> None:
    try:
        app_state(current_app).streams.admit(client)
    except WorkerFull:
        raise ApiError(
            503, Code.SERVER_BUSY, "The server is at capacity. Try again in a moment.", retry_after_s=5
        ) from None
    except ClientBusy:
        raise ApiError(
            429,
            Code.TOO_MANY_STREAMS,
            "Too many answers are streaming for you at once. Stop one, or wait for one to finish.",
            retry_after_s=5,
        ) from None


@bp.post("/chat/<stream_id>/stop")
def stop(stream_id: str) -> tuple[dict[str, bool], int]:
    require_json_content_type(request.mimetype)
    if not app_state(current_app).streams.cancel(stream_id):
        raise ApiError(
            404,
            Code.STREAM_NOT_FOUND,
            "No running stream has that id in this worker; it may have finished already.",
        )
    return {"stopped": True}, 202
