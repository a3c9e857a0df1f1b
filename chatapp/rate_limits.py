"""Per-client rate limits on starting streams, with Flask-Limiter.

Counts live in memory by default (per worker process: with N workers a client
gets up to N times the limit), or in Redis through
`CHATAPP_RATELIMIT_STORAGE_URI` (`redis://host:6379/0`), shared by every worker
and machine. If the storage fails, requests are let through and the failure is
logged: a rate limiter outage must not take the chat down.
"""

from __future__ import annotations

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from .config import Settings

limiter = Limiter(key_func=get_remote_address)


def init_limits(app: Flask, settings: Settings) -> None:
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_ENABLED=bool(settings.rate_limit),
    )
    limiter.init_app(app)


def chat_rate_limit() -> str:
    """The limit on `POST /api/chat`, read per request from the app's settings."""
    from .state import app_state

    return app_state(current_app).settings.rate_limit  # never asked when empty: the limiter is off


# One budget for every endpoint that starts a stream (POST /api/chat, a conversation's message,
# a regenerate): CHATAPP_RATE_LIMIT is what a client may start, whichever way it asks.
streams_rate_limit = limiter.shared_limit(chat_rate_limit, scope="streams")
