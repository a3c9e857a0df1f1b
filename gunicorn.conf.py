"""gunicorn settings for chatapp: `gunicorn -c gunicorn.conf.py wsgi:app`.

Each setting reads the environment, with a default that suits long-lived
streaming responses. This file is loaded by the master before any worker
exists, so it must not import chatapp, openai or ssl (see preload_app).
"""

import ipaddress
import multiprocessing
import os
import secrets

# Loopback by default: exposing the app is the operator's decision. PORT follows the
# convention of platforms that set it (listen on every interface).
bind = os.environ.get("CHATAPP_BIND") or (
    f"0.0.0.0:{os.environ['PORT']}" if os.environ.get("PORT") else "127.0.0.1:8000"
)

# gevent: each stream is a greenlet that mostly waits on sockets, so one worker holds
# thousands of them; a sync worker would be tied up by a single answer.
worker_class = "gevent"

# One worker per core: the relay's CPU work is small but real, and gevent uses one core per process.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))

# Concurrent connections (open streams plus idle keep-alive clients) per worker.
worker_connections = int(os.environ.get("CHATAPP_WORKER_CONNECTIONS", 1000))

# The worker heartbeat comes from the gevent hub, not from requests, so long streams do
# not trip this; it only restarts a worker whose hub is blocked (stuck CPU or a blocking call).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))

# On SIGTERM or a reload, running answers get this long to finish before the worker exits.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))

# How long an idle keep-alive connection is held. Longer than nginx's keepalive_timeout
# (60 s), so that behind nginx it is nginx that closes first and never reuses a dead socket.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 75))

# Never preload: the app imports the openai SDK, which imports ssl and builds an SSL
# context. Done in the master, before gevent patches the worker after fork, that context
# and any pooled socket would be unpatched and block the whole worker on every read.
# Each worker imports the app itself, after patching, and creates its own client lazily.
preload_app = False

errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None

# gunicorn's runtime control socket is not used, and one fixed path per user would make
# two instances on one host (a blue/green deploy, the test suite) fight over it.
control_socket_disable = True


def post_worker_init(worker):
    """In each worker, after gevent has patched it and the app is loaded: on SIGTERM, let
    running answers finish within graceful_timeout, then end the rest cleanly."""
    from chatapp.state import app_state
    from chatapp.streams import drain_on_worker_exit

    drain_on_worker_exit(worker, app_state(worker.wsgi).streams)


# The session cookie's key, made here in the master when the operator set none, so that every
# worker signs and checks cookies with the same one (a key per worker would sign people out at
# random). It still changes with each start; chatapp warns about that when sign-in is on.
_secret_key_generated = not os.environ.get("SECRET_KEY")
if _secret_key_generated:
    os.environ["SECRET_KEY"] = secrets.token_hex(32)


def when_ready(server):
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


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
