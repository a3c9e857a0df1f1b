"""The server-rendered chat page."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from ..state import app_state

bp = Blueprint("pages", __name__)


@bp.get("/")
def chat_page() -> str:
    settings = app_state(current_app).settings
    return render_template("chat.html", model=settings.model, models=settings.models)
