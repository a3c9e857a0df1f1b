"""An https:// model server (as OpenAI is): the body is read from the TLS socket, text arrives
exactly, and the TLS connection is reused, under real gunicorn and in process."""

import ssl
from collections.abc import Iterator

import pytest
import trustme

from chatapp.config import Settings
from chatapp.llm.base import Finish, TextDelta
from chatapp.llm.http_body import SocketBody
from chatapp.llm.openai_backend import OpenAIBackend
from chatapp.validation import ChatRequest, Message
from tests.conftest import upstream_env
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.gunicorn_runner import GunicornServer
from tests.support.sse_client import post_chat


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> tuple[trustme.CA, str]:
    """A throwaway certificate authority, and its certificate in a file."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@pytest.fixture(scope="module")
def tls_upstream(ca_file) -> Iterator[FakeUpstream]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca_file[0].issue_cert("127.0.0.1").configure_cert(context)
    server = FakeUpstream(tls=context).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_app(tls_upstream, ca_file) -> Iterator[GunicornServer]:
    _, path = ca_file
    # SSL_CERT_FILE: httpx trusts the test CA, as an operator would point it at a private CA.
    with GunicornServer({**upstream_env(tls_upstream), "SSL_CERT_FILE": path}) as server:
        yield server


def ask(model):
    return {"messages": [{"role": "user", "content": "hi"}], "model": model}


@pytest.mark.parametrize("behaviour", [Behaviour(), Behaviour(split_utf8=True)], ids=["whole", "split"])
def test_text_over_tls_arrives_exactly(tls_app, tls_upstream, behaviour):
    assert tls_upstream.base_url.startswith("https://")
    result = post_chat(tls_app.url, ask(tls_upstream.model(behaviour)))
    assert result.text == behaviour.text
    assert result.done == {"finish_reason": "stop"}


def test_answers_share_one_tls_connection(tls_app, tls_upstream):
    model = tls_upstream.model()
    for _ in range(3):
        assert post_chat(tls_app.url, ask(model)).done == {"finish_reason": "stop"}
    assert len({r.peer for r in tls_upstream.requests_for(model)}) == 1


def test_the_tls_body_is_read_from_the_socket(tls_upstream, ca_file, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", ca_file[1])
    backend = OpenAIBackend(Settings(openai_base_url=tls_upstream.base_url, openai_api_key="sk-test"))
    stream = backend.stream(ChatRequest(messages=(Message("user", "hi"),), model=tls_upstream.model()))
    stream.open()
    assert type(stream._body) is SocketBody
    events = []
    while not (events and isinstance(events[-1], Finish)):
        events += stream.read(5.0)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == Behaviour().text
    stream.close()
