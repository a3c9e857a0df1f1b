"""The JSON/SSE API: `POST /api/chat` streams one answer (docs/api.md)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..relay import Relay
from ..state import app_state
from ..validation import parse_chat_request, require_json_content_type

bp = Blueprint("api", __name__, url_prefix="/api")

SSE_HEADERS = {
    # no-transform: proxies must not compress or rewrite the stream (gzip buffers it).
    "Cache-Control": "no-cache, no-transform",
    # nginx buffers proxied responses unless told not to, which would hold every token back.
    "X-Accel-Buffering": "no",
}


@bp.post("/chat")
def chat() -> Response:
    state = app_state(current_app)
    require_json_content_type(request.mimetype)
    # Past the byte limit this raises 413 (Content-Length) or stops early (chunked; see create_app).
    chat_request = parse_chat_request(request.get_data(cache=False), state.settings)
    relay = Relay(
        state.backend.stream(chat_request),
        heartbeat_s=state.settings.heartbeat_s,
        client=request.remote_addr,
    )
    return Response(
        relay.frames(),
        status=200,
        headers=SSE_HEADERS,
        content_type="text/event-stream; charset=utf-8",
    )
