"""Shared fixtures: the app in-process, the fake upstream, and chatapp under real gunicorn.

`chatapp_server(upstream, workers=1, **env)` gives chatapp under gunicorn with those settings,
started on first use and shared by every test that asks for the same settings; all of them are
stopped when the session ends. A test that needs a server of its own (restarts, signals, state
that must start empty) builds a `harness.gunicorn.GunicornServer` itself.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from chatapp import create_app
from harness.gunicorn import GunicornServer
from harness.postgres import PostgresServer
from tests.support.fake_upstream import FakeUpstream

# A fake key with a recognisable shape: tests assert it never shows up where it must not.
FAKE_API_KEY = "sk-test-chatapp-0123456789abcdef"

# In-process apps keep conversations in a throwaway SQLite file (the default would be the
# repository's instance/ folder); removed when the test run ends.
_IN_PROCESS_DATA = tempfile.mkdtemp(prefix="chatapp-tests-")
atexit.register(shutil.rmtree, _IN_PROCESS_DATA, ignore_errors=True)

FAST_DEMO = {
    "DATABASE_URL": f"sqlite:///{_IN_PROCESS_DATA}/chat.sqlite3",
    "CHATAPP_BACKEND": "demo",
    "CHATAPP_RATE_LIMIT": "",  # tests send many requests from one address; limits have their own tests
    "CHATAPP_DEMO_TOKENS_PER_S": "5000",
    "CHATAPP_DEMO_FIRST_TOKEN_S": "0",
}


@pytest.fixture
def app() -> Flask:
    return create_app(FAST_DEMO)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


def upstream_env(upstream: FakeUpstream, **extra: str) -> dict[str, str]:
    """Environment that points chatapp at the fake upstream, with retries off so failures are quick."""
    return {
        "OPENAI_BASE_URL": upstream.base_url,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "CHATAPP_UPSTREAM_MAX_RETRIES": "0",
        # Every test client is 127.0.0.1: the per-client cap is tested on its own.
        "CHATAPP_MAX_STREAMS_PER_CLIENT": "0",
        "CHATAPP_RATE_LIMIT": "",
        **extra,
    }


class ChatappServers:
    """chatapp under gunicorn, one server per combination of settings, kept running until `stop_all()`."""

    def __init__(self) -> None:
        self._running: dict[tuple[int, tuple[tuple[str, str], ...]], GunicornServer] = {}

    def __call__(
        self, upstream: FakeUpstream | None = None, *, workers: int = 1, **env: str
    ) -> GunicornServer:
        """chatapp in front of `upstream` (with `upstream_env`'s settings), or with `env` alone when
        there is none (no settings at all: the offline demo, as the README runs it)."""
        settings = upstream_env(upstream, **env) if upstream is not None else env
        key = (workers, tuple(sorted(settings.items())))
        server = self._running.get(key)
        if server is None or server.process is None or server.process.poll() is not None:
            server = self._running[key] = GunicornServer(settings, workers=workers).start()
        return server

    def retire(self, server: GunicornServer) -> None:
        """Stop a server before the session ends (one whose settings no other test will ask for)."""
        self._running = {key: s for key, s in self._running.items() if s is not server}
        server.stop()

    def stop_all(self) -> None:
        for server in self._running.values():
            server.stop()
        self._running.clear()


@pytest.fixture(scope="session")
def chatapp_server() -> Iterator[ChatappServers]:
    """`chatapp_server(upstream, workers=1, **env)`: chatapp under gunicorn with these settings."""
    servers = ChatappServers()
    yield servers
    servers.stop_all()


@pytest.fixture
def gunicorn_app(chatapp_server: ChatappServers, upstream: FakeUpstream) -> GunicornServer:
    """chatapp under `gunicorn -c gunicorn.conf.py wsgi:app`, one gevent worker, on the fake upstream."""
    return chatapp_server(upstream)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server (127.0.0.1, a free port) for the session; tests that need a
    database of their own make one with `postgres.create_database(name)`."""
    with PostgresServer() as server:
        yield server
