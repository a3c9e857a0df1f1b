"""chatapp: a Flask app that streams an LLM's answer into a chat page, token by token."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .access import init_access
from .config import Settings
from .errors import register_error_handlers
from .rate_limits import init_limits
from .security import register_security
from .startup import start_up
from .state import EXTENSION_KEY, build_state

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Settings | Mapping[str, str] | None = None) -> Flask:
    """The application factory.

    `config` is either ready `Settings`, or an environment-style mapping used
    instead of the process environment (tests pass one); by default the
    environment and `.env` are read.
    """
    settings = config if isinstance(config, Settings) else Settings.from_env(config)
    _configure_logging(settings.log_level)

    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    # One byte over the limit: werkzeug stops reading a chunked body at MAX_CONTENT_LENGTH
    # without an error, so validation sees limit + 1 bytes and answers 413 itself.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    # A doubled slash is a 404 like any unknown path, not a redirect that a POST cannot follow.
    app.url_map.merge_slashes = False
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    # Under gunicorn this runs in each worker, after gevent patched it (preload_app is off).
    state = app.extensions[EXTENSION_KEY] = build_state(settings, app.instance_path)
    start_up(state)
    init_access(app, settings)
    init_limits(app, settings)

    from .views import access, api, conversations, health, models, pages, reattach

    app.register_blueprint(access.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(conversations.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(reattach.bp)
    app.register_blueprint(health.bp)
    register_error_handlers(app)
    register_security(app)

    logging.getLogger(__name__).info("chatapp ready: backend=%s model=%s", settings.backend, settings.model)
    return app


def _configure_logging(level: str) -> None:
    """Send chatapp's own log lines to stderr (gunicorn's error log) unless the host set it up."""
    logger = logging.getLogger(__name__)
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
