"""The fast path is taken: the real SDK's streaming response, plain or TLS, is read from its socket.

http_body.SocketBody reaches into httpx and httpcore; if an upgrade moved what it needs, it
would quietly fall back to the slower httpx path. These tests fail instead.
"""

import pytest

from chatapp.config import Settings
from chatapp.llm.base import Finish, TextDelta
from chatapp.llm.http_body import SocketBody, ThreadedBody
from chatapp.llm.openai_backend import OpenAIBackend
from chatapp.validation import ChatRequest, Message
from tests.support.fake_upstream import Behaviour


def open_stream(upstream, behaviour):
    backend = OpenAIBackend(
        Settings(openai_base_url=upstream.base_url, openai_api_key="sk-test", upstream_max_retries=0)
    )
    stream = backend.stream(ChatRequest(messages=(Message("user", "hi"),), model=upstream.model(behaviour)))
    stream.open()
    return stream


def read_all(stream):
    events = []
    while not (events and isinstance(events[-1], Finish)):
        events += stream.read(5.0)
    return events


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_chunked_answer_is_read_from_the_socket(request, monkeypatch, scheme):
    if scheme == "https":
        monkeypatch.setenv("SSL_CERT_FILE", request.getfixturevalue("ca_file")[1])
    upstream = request.getfixturevalue("tls_upstream" if scheme == "https" else "upstream")
    behaviour = Behaviour(split_events=True)
    stream = open_stream(upstream, behaviour)
    assert type(stream._body) is SocketBody
    events = read_all(stream)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == behaviour.text
    stream.close()


@pytest.mark.parametrize(
    "behaviour", [Behaviour(gzip=True), Behaviour(framing="close")], ids=["gzip", "close"]
)
def test_other_bodies_are_read_through_httpx(upstream, behaviour):
    stream = open_stream(upstream, behaviour)
    assert type(stream._body) is ThreadedBody
    events = read_all(stream)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == behaviour.text
    stream.close()
