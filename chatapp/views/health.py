"""`GET /healthz` for load balancers; `GET /debug/stats` for tests and load runs when enabled."""

from __future__ import annotations

import gc
import os

import greenlet
from flask import Blueprint, abort, current_app

from ..state import app_state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/debug/stats")
def debug_stats() -> dict[str, int]:
    """This worker's live streams and greenlets, to prove that finished streams leave nothing."""
    state = app_state(current_app)
    if not state.settings.debug_stats:
        abort(404)
    greenlets = sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet) and obj)
    return {"pid": os.getpid(), "streams": len(state.streams), "greenlets": greenlets}
