"""Fixtures for an https:// model server (as OpenAI is): a throwaway CA, the fake upstream behind
TLS, and chatapp under gunicorn trusting that CA; and `served`, which gives a test chatapp with its
upstream over plain HTTP or over TLS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme

from harness.gunicorn import GunicornServer
from tests.conftest import ChatappServers
from tests.support.fake_upstream import FakeUpstream


@pytest.fixture(scope="session")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    """A throwaway certificate authority, and its certificate in a file."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@pytest.fixture(scope="session")
def tls_upstream(ca_file: tuple[trustme.CA, str]) -> Iterator[FakeUpstream]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca_file[0].issue_cert("127.0.0.1").configure_cert(context)
    server = FakeUpstream(tls=context).start()
    yield server
    server.stop()


@pytest.fixture
def tls_app(
    chatapp_server: ChatappServers, tls_upstream: FakeUpstream, ca_file: tuple[trustme.CA, str]
) -> GunicornServer:
    # SSL_CERT_FILE: httpx trusts the test CA, as an operator would point it at a private CA.
    return chatapp_server(tls_upstream, SSL_CERT_FILE=ca_file[1])


@pytest.fixture(params=["http", "https"])
def served(request: pytest.FixtureRequest) -> tuple[GunicornServer, FakeUpstream]:
    """chatapp and its upstream, over plain HTTP or over TLS."""
    if request.param == "https":
        return request.getfixturevalue("tls_app"), request.getfixturevalue("tls_upstream")
    return request.getfixturevalue("gunicorn_app"), request.getfixturevalue("upstream")
