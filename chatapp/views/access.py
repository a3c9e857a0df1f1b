"""The sign-in form for `CHATAPP_ACCESS_TOKEN` (see chatapp/access.py)."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ..access import check_token, safe_next, sign_in_session
from ..state import app_state

bp = Blueprint("access", __name__)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int] | str:
    settings = app_state(current_app).settings
    if settings.access_token is None:
        return redirect(url_for("pages.chat_page"))
    wanted = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("sign_in.html", error=None, next=wanted)
    if check_token(settings, request.form.get("token", "")):
        sign_in_session()
        return redirect(wanted or url_for("pages.chat_page"))
    return render_template("sign_in.html", error="That access token is not right.", next=wanted), 401
