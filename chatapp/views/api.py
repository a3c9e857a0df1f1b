"""The stateless JSON/SSE API (docs/api.md): `POST /api/chat` streams one answer; `.../stop` ends one."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..errors import ApiError, shared_state_unavailable
from ..protocol import ErrorCode
from ..rate_limits import streams_rate_limit
from ..state import app_state
from ..stream_responses import admitted_stream, stream_response
from ..streaming.coordination import SharedStateUnavailable
from ..validation import parse_chat_request, require_json_content_type

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.post("/chat")
@streams_rate_limit
def chat() -> Response:
    settings = app_state(current_app).settings
    require_json_content_type(request.mimetype)
    with admitted_stream() as release:
        # Past the byte limit this raises 413 (Content-Length) or stops early (chunked; see create_app).
        chat_request = parse_chat_request(request.get_data(cache=False), settings)
        return stream_response(chat_request, release)


@bp.post("/chat/<stream_id>/stop")
def stop(stream_id: str) -> tuple[dict[str, bool], int]:
    """Stop a stream wherever it runs: this process, or through the coordinator any other."""
    require_json_content_type(request.mimetype)
    state = app_state(current_app)
    if state.streams.cancel(stream_id):
        return {"stopped": True}, 202
    try:
        stopped = state.coordinator.stop_elsewhere(stream_id)
    except SharedStateUnavailable:
        raise shared_state_unavailable() from None
    if not stopped:
        raise ApiError(
            404, ErrorCode.STREAM_NOT_FOUND, "No stream with that id is running; it may have ended already."
        )
    return {"stopped": True}, 202
