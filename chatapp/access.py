"""Access control: with `CHATAPP_ACCESS_TOKEN` set, only people who signed in with it may chat.

The page asks for the token once; a correct one is remembered in Flask's signed
session cookie (HttpOnly, SameSite=Lax, Secure when configured). Every API call
without that session gets 401 JSON, every page a redirect to the sign-in form.
With no token configured everything is open, which is fine on loopback and
warned about at start-up anywhere else (gunicorn.conf.py).
"""

from __future__ import annotations

import hmac
import logging
import secrets

from flask import Flask, Request, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from .config import Settings
from .errors import ApiError
from .protocol import ErrorCode

log = logging.getLogger(__name__)

SESSION_FLAG = "signed_in"
OPEN_ENDPOINTS = frozenset({"access.sign_in", "static", "health.healthz"})


def init_access(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=settings.secret_key or _random_key(warn=settings.access_token is not None),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
    )
    if settings.access_token is None:
        return

    @app.before_request
    def _require_sign_in() -> ResponseReturnValue | None:
        if request.endpoint in OPEN_ENDPOINTS or session.get(SESSION_FLAG):
            return None
        if _is_api(request):
            raise ApiError(401, ErrorCode.UNAUTHORIZED, "Sign in first: this chat needs its access token.")
        # Back to the page asked for once signed in (a conversation's link, say).
        wanted = request.full_path.rstrip("?") if request.path != "/" else None
        return redirect(url_for("access.sign_in", next=wanted))


def safe_next(target: str | None) -> str | None:
    """A path on this site to go back to, or None: never another host (`//evil`, `/\\evil`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def check_token(settings: Settings, given: str) -> bool:
    """Constant-time comparison, so the time taken tells nothing about the token."""
    expected = settings.access_token
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def sign_in_session() -> None:
    session.clear()
    session[SESSION_FLAG] = True
    session.permanent = True


def _is_api(req: Request) -> bool:
    return req.path.startswith("/api/") or req.accept_mimetypes.best == "application/json"


def _random_key(warn: bool) -> str:
    if warn:
        log.warning(
            "SECRET_KEY is not set: using a random key, so sign-ins end when the server restarts. "
            "Set SECRET_KEY to keep them."
        )
    return secrets.token_hex(32)
