"""`GET /api/models`: the models a person may pick (model_catalog.py), and the default."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from ..state import app_state

bp = Blueprint("models", __name__, url_prefix="/api")


@bp.get("/models")
def list_models() -> dict[str, Any]:
    state = app_state(current_app)
    return {"models": state.models.names(), "default": state.settings.model}
