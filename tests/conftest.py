"""Shared fixtures: the app in-process, the fake upstream, and chatapp under real gunicorn.

`chatapp_server(upstream, workers=1, **env)` gives chatapp under gunicorn with those settings,
started on first use and shared by every test that asks for the same settings; all of them are
stopped when the session ends. A test that needs a server of its own (restarts, signals, state
that must start empty) builds a `harness.gunicorn.GunicornServer` itself.

`machines.start(count, redis=..., **env)` gives chatapp as several machines run it: that many
gunicorn instances, each with its own workers, sharing one Redis (`CHATAPP_REDIS_URL`) and one
new PostgreSQL database; shared like `chatapp_server`'s, and stopped when the session ends.

Under pytest-xdist each worker process has a session of its own: its own fake upstream, servers,
PostgreSQL and Redis, on ports drawn from its own slice (harness/processes.py), with data in
folders of its own.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings

from chatapp import create_app
from harness.gunicorn import GunicornServer
from harness.postgres import PostgresServer
from harness.redis import RedisServer
from tests.support.fake_upstream import FakeUpstream

# Hypothesis fails an example that takes over 200 ms: a time that a slower machine, or the other
# worker of a parallel run, can make it miss. What the properties prove is not how fast they run.
settings.register_profile("chatapp", deadline=None)
settings.load_profile("chatapp")

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


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    """A redis-server shared by the session's instances; a test that restarts it, or counts a
    client in it (caps, rate limits), starts one of its own."""
    with RedisServer() as server:
        yield server


class Machines:
    """chatapp instances as separate machines run them: each its own gunicorn master and workers on
    its own port, all on one fake upstream, sharing one Redis and one PostgreSQL database. The
    instances of one set of settings are started once and shared, as `chatapp_server`'s are."""

    def __init__(self, upstream: FakeUpstream, postgres: PostgresServer) -> None:
        self._upstream = upstream
        self._postgres = postgres
        self._running: dict[tuple[object, ...], list[GunicornServer]] = {}

    def database(self) -> str:
        """The URL of a new, empty database on the session's PostgreSQL."""
        return self._postgres.create_database(f"machines_{uuid.uuid4().hex[:10]}")

    def start(
        self,
        count: int = 2,
        *,
        redis: RedisServer | None,
        database_url: str | None = None,
        workers: int | None = 2,
        args: list[str] | None = None,
        **env: str,
    ) -> list[GunicornServer]:
        """`count` instances with `workers` gevent workers each (None: gunicorn.conf.py's default),
        sharing `redis` (none: no CHATAPP_REDIS_URL) and `database_url` (a new database when None);
        started side by side, since each takes a second or two to boot."""
        key = (
            count,
            redis and redis.uri,
            database_url,
            workers,
            tuple(args or ()),
            tuple(sorted(env.items())),
        )
        servers = self._running.get(key, [])
        if servers and all(s.process is not None and s.process.poll() is None for s in servers):
            return servers
        shared = {"DATABASE_URL": database_url or self.database()}
        if redis is not None:
            shared["CHATAPP_REDIS_URL"] = redis.uri
        settings = upstream_env(self._upstream, **shared, **env)
        servers = self._running[key] = [
            GunicornServer(settings, workers=workers, args=args) for _ in range(count)
        ]
        with ThreadPoolExecutor(max_workers=count) as pool:
            for started in [pool.submit(server.start) for server in servers]:
                started.result()
        return servers

    def retire(self, servers: list[GunicornServer]) -> None:
        """Stop instances before the session ends (those whose settings no other test asks for)."""
        self._running = {
            k: s for k, s in self._running.items() if not set(map(id, s)) & set(map(id, servers))
        }
        self._stop(servers)

    def stop_all(self) -> None:
        self._stop([server for servers in self._running.values() for server in servers])
        self._running.clear()

    @staticmethod
    def _stop(servers: list[GunicornServer]) -> None:
        with ThreadPoolExecutor(max_workers=max(len(servers), 1)) as pool:
            list(pool.map(GunicornServer.stop, servers))


@pytest.fixture(scope="session")
def machines(upstream: FakeUpstream, postgres: PostgresServer) -> Iterator[Machines]:
    """`machines.start(count, redis=..., workers=2, **env)`: chatapp instances sharing Redis and a
    PostgreSQL database, as several machines; all stopped when the session ends."""
    servers = Machines(upstream, postgres)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def two_machines(machines: Machines, redis: RedisServer) -> tuple[GunicornServer, GunicornServer]:
    """Two instances (two gevent workers each) sharing the session's Redis and a PostgreSQL
    database, as two machines behind one nginx (they trust one proxy's X-Forwarded-* headers)."""
    a, b = machines.start(2, redis=redis, CHATAPP_TRUSTED_PROXIES="1")
    return a, b
