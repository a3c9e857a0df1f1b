"""`GET /api/streams/<stream_id>`: follow a stored conversation's answer from any tab, worker or
machine, from a position (docs/api.md, "reattach to an answer")."""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, request

from ..errors import ApiError, shared_state_unavailable
from ..protocol import ErrorCode
from ..state import app_state
from ..stream_responses import follow_response
from ..streaming.coordination import SharedStateUnavailable

bp = Blueprint("reattach", __name__, url_prefix="/api")

_POSITION = re.compile(r"(?:(?P<stream>[A-Za-z0-9_-]+):)?(?P<sequence>[0-9]{1,12})")


@bp.get("/streams/<stream_id>")
def follow(stream_id: str) -> Response:
    state = app_state(current_app)
    position = _position(stream_id)
    heartbeat_s = state.settings.heartbeat_s
    answer_log = state.answers.log_for(stream_id)
    if answer_log is not None:
        return follow_response(answer_log.follow(position, heartbeat_s))
    try:
        remote = state.coordinator.follow(stream_id, position, heartbeat_s)
    except SharedStateUnavailable:
        raise shared_state_unavailable() from None
    if remote is None:
        raise ApiError(
            404,
            ErrorCode.STREAM_NOT_FOUND,
            "No answer with that id is running or recently ended; read the stored conversation instead.",
        )
    return follow_response(remote.frames())


def _position(stream_id: str) -> int:
    """Where the reader is: the Last-Event-ID header (what EventSource resends), else ?after=."""
    raw = request.headers.get("Last-Event-ID")
    if raw is None:
        raw = request.args.get("after", "0")
    found = _POSITION.fullmatch(raw.strip())
    if found is None or found["stream"] not in (None, stream_id):
        raise ApiError(
            400,
            ErrorCode.INVALID_EVENT_ID,
            "Last-Event-ID or after must be an event id of this stream (<stream_id>:<sequence>) "
            "or a sequence number of 0 or more.",
        )
    return int(found["sequence"])
