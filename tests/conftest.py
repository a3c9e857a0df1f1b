"""Shared fixtures: the app in-process, the fake upstream, and chatapp under real gunicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from chatapp import create_app
from tests.support.fake_upstream import FakeUpstream
from tests.support.gunicorn_runner import GunicornServer

# A fake key with a recognisable shape: tests assert it never shows up where it must not.
FAKE_API_KEY = "sk-test-chatapp-0123456789abcdef"

FAST_DEMO = {
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


@pytest.fixture(scope="session")
def gunicorn_app(upstream: FakeUpstream) -> Iterator[GunicornServer]:
    """chatapp under `gunicorn -c gunicorn.conf.py wsgi:app`, one gevent worker, on the fake upstream."""
    with GunicornServer(upstream_env(upstream)) as server:
        yield server
