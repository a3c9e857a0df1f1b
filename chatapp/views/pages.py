"""The server-rendered chat page."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

from ..state import app_state

bp = Blueprint("pages", __name__)


@bp.get("/")
def chat_page() -> str:
    settings = app_state(current_app).settings
    # Reaches chat.js as a JSON block, not an inline script, so a strict CSP can forbid those.
    page_config = {"chatUrl": url_for("api.chat"), "model": settings.model}
    return render_template("chat.html", model=settings.model, page_config=page_config)
