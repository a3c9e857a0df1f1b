"""gunicorn settings for chatapp: `gunicorn -c gunicorn.conf.py wsgi:app`.

Each setting reads the environment, with a default that suits long-lived
streaming responses. This file is loaded by the master before any worker
exists, so it must not import chatapp, openai or ssl (see preload_app).
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from dotenv import find_dotenv, load_dotenv

from serving.connection_limits import ConnectionLimits

if TYPE_CHECKING:
    from chatapp.state import AppState  # never at run time: the master must not import chatapp

T = TypeVar("T", int, float)


def _setting(
    name: str, default: T, parse: Callable[[str], T], valid: Callable[[T], bool], expected: str
) -> T:
    """A setting from the environment, `parse`d and checked by `valid`; a bad value stops start-up
    naming the variable, as chatapp's own settings do (this file may not import chatapp: see
    preload_app)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not valid(value):
        raise SystemExit(f"{name} must be {expected}, got {raw!r}")
    return value


def _whole_number(name: str, default: int, minimum: int = 1) -> int:
    return _setting(name, default, int, lambda v: v >= minimum, f"a whole number of at least {minimum}")


def _seconds(name: str, default: float) -> float:
    return _setting(name, default, float, lambda v: v > 0, "a number of seconds greater than 0")


# Loopback by default: exposing the app is the operator's decision. PORT follows the
# convention of platforms that set it (listen on every interface).
bind = os.environ.get("CHATAPP_BIND") or (
    f"0.0.0.0:{os.environ['PORT']}" if os.environ.get("PORT") else "127.0.0.1:8000"
)

# gevent: each stream is a greenlet that mostly waits on sockets, so one worker holds
# thousands of them; a sync worker would be tied up by a single answer. chatapp's subclass of
# gunicorn's gevent worker bounds what a client can hold before its answer starts (serving/).
worker_class = "serving.worker.ChatappWorker"

# The settings chatapp reads from a .env file count here too (the app loads it the same way).
load_dotenv(find_dotenv(usecwd=True), override=False)

# Workers share which streams run (for Stop), the per-client caps and the answers that readers
# reattach to through Redis. Without it the one process is the whole truth, so it runs alone:
# one gevent worker holds thousands of streams; several need CHATAPP_REDIS_URL.
_shared_state = bool(os.environ.get("CHATAPP_REDIS_URL", "").strip())

# One worker per core with Redis: the relay's CPU work is small but real, and gevent uses one
# core per process.
workers = _whole_number("WEB_CONCURRENCY", multiprocessing.cpu_count() if _shared_state else 1)

# Concurrent connections (open streams plus idle keep-alive clients) per worker.
worker_connections = _whole_number("CHATAPP_WORKER_CONNECTIONS", 1000)

# The worker heartbeat comes from the gevent hub, not from requests, so long streams do
# not trip this; it only restarts a worker whose hub is blocked (stuck CPU or a blocking call).
timeout = _whole_number("GUNICORN_TIMEOUT", 30)

# On SIGTERM or a reload, running answers get this long to finish before the worker exits.
graceful_timeout = _whole_number("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=0)

# How long an idle keep-alive connection is held. Longer than nginx's keepalive_timeout
# (60 s), so that behind nginx it is nginx that closes first and never reuses a dead socket.
# At least 1: gunicorn times the wait for a request (and so the header timeout) only with it on.
keepalive = _whole_number("GUNICORN_KEEPALIVE", 75)

# What a client may hold before its answer starts (serving/limits.py says why each exists).
# Behind proxies (CHATAPP_TRUSTED_PROXIES) every connection comes from a proxy, which limits
# its own clients (deploy/nginx.conf): no per-address cap unless one is set.
_behind_proxies = _whole_number("CHATAPP_TRUSTED_PROXIES", 0, minimum=0) > 0
try:
    connection_limits = ConnectionLimits(
        header_timeout_s=_seconds("CHATAPP_HEADER_TIMEOUT_S", 10.0),
        body_idle_s=_seconds("CHATAPP_BODY_IDLE_S", 5.0),
        body_timeout_s=_seconds("CHATAPP_BODY_TIMEOUT_S", 60.0),
        max_waiting_per_client=_whole_number(
            "CHATAPP_MAX_WAITING_CONNECTIONS_PER_CLIENT", 0 if _behind_proxies else 32, minimum=0
        ),
    )
except ValueError as error:
    raise SystemExit(str(error)) from None

# Never preload: the app imports the openai SDK, which imports ssl and builds an SSL
# context. Done in the master, before gevent patches the worker after fork, that context
# and any pooled socket would be unpatched and block the whole worker on every read.
# Each worker imports the app itself, after patching, and creates its own client lazily.
preload_app = False

errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info").strip().lower() or "info"
if loglevel not in ("debug", "info", "warning", "error", "critical"):
    raise SystemExit(f"GUNICORN_LOGLEVEL must be debug, info, warning, error or critical, got {loglevel!r}")
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None

# gunicorn's runtime control socket is not used, and one fixed path per user would make
# two instances on one host (a blue/green deploy, the test suite) fight over it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Refuse several workers without Redis (from WEB_CONCURRENCY or --workers alike): a Stop or a
    reattach that reached the wrong worker would not find its stream. Refuse keep-alive off
    (--keep-alive 0): gunicorn would then wait for a request's headers with no timeout."""
    if server.cfg.keepalive < 1:
        raise SystemExit("keep-alive must be at least 1 second (GUNICORN_KEEPALIVE)")
    if server.cfg.workers > 1 and not _shared_state:
        raise SystemExit(
            f"{server.cfg.workers} workers need CHATAPP_REDIS_URL, through which they share running "
            "streams (Stop, reattaching, per-client caps). Set it (redis://127.0.0.1:6379/0), or run "
            "one worker (WEB_CONCURRENCY=1), which holds thousands of streams."
        )


def post_worker_init(worker: Any) -> None:
    """In each worker, after gevent has patched it and the app is loaded: on SIGTERM, let
    running answers finish within graceful_timeout, then end the rest cleanly."""
    import gc

    from chatapp.state import app_state

    worker.limits = connection_limits
    # Loading the app (wsgi:app, create_app) ran its start-up step (chatapp/startup.py): the store
    # is migrated and open, and answers a dead worker left `streaming` are marked interrupted.
    state = app_state(worker.wsgi)
    # The app's start-up objects live as long as the worker: keep them out of every later garbage
    # collection, whose full pass over ~100k of them paused the worker's streams for 80-170 ms.
    gc.collect()
    gc.freeze()
    threading.Thread(target=_drain_on_exit, args=(worker, state), name="drain-on-exit", daemon=True).start()


def _drain_on_exit(worker: Any, state: AppState) -> None:
    """Wait until the worker is told to exit, then drain: new streams get 503 shutting_down,
    running ones may finish until shortly before graceful_timeout, the rest end with
    `done`/`cancelled`, so that none is cut off mid-event and every upstream is closed."""
    while worker.alive:
        time.sleep(0.1)
    # gunicorn checks every second and kills what is left at graceful_timeout: end first.
    deadline = time.monotonic() + max(worker.cfg.graceful_timeout - 1.5, 0)
    if state.streams:
        worker.log.info("worker exiting: %d streams running", len(state.streams))
    cancelled = state.drain(deadline)
    if cancelled:
        worker.log.info("worker exiting: cancelled %d streams", cancelled)


# The session cookie's key, made here in the master when the operator set none, so that every
# worker signs and checks cookies with the same one (a key per worker would sign people out at
# random). It still changes with each start; chatapp warns about that when sign-in is on.
_secret_key_generated = not os.environ.get("SECRET_KEY")
if _secret_key_generated:
    os.environ["SECRET_KEY"] = secrets.token_hex(32)


def when_ready(server: Any) -> None:
    """Warn, once, about settings that expose the app or sign people out."""
    if os.environ.get("CHATAPP_ACCESS_TOKEN"):
        if _secret_key_generated:
            server.log.warning("SECRET_KEY is not set: sign-ins end when chatapp restarts. Set SECRET_KEY.")
        return
    for address in server.cfg.bind:
        host = address.rsplit(":", 1)[0].strip("[]")
        if not host.startswith("unix") and not _is_loopback(host):
            server.log.warning(
                "listening on %s with no CHATAPP_ACCESS_TOKEN: anyone who can reach it can chat, "
                "on your API key. Set CHATAPP_ACCESS_TOKEN, or bind to 127.0.0.1 behind an "
                "authenticating proxy.",
                address,
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
