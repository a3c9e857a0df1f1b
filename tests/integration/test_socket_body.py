"""The fast path is taken: the real SDK's streaming response, plain or TLS, is read from its socket.

upstream_body.SocketBody reaches into httpx and httpcore; if an upgrade moved what it needs, it
would quietly fall back to the slower httpx path. These tests fail instead.
"""

import time

import pytest

from chatapp.llm.base import BackendEvent, ChatRequest, Finish, Message, TextDelta
from chatapp.llm.openai_backend import OpenAIBackend, OpenAIOptions
from chatapp.llm.upstream_body import SocketBody, ThreadedBody
from tests.support.fake_upstream import Behaviour


@pytest.fixture(autouse=True)
def backends():
    """The backends a test made, closed after it (each holds a pool of upstream connections)."""
    made: list[OpenAIBackend] = []
    yield made
    for backend in made:
        backend.close()


@pytest.fixture
def open_stream(backends):
    def open_stream(upstream, behaviour):
        backend = OpenAIBackend(OpenAIOptions(api_key="sk-test", base_url=upstream.base_url, max_retries=0))
        backends.append(backend)
        stream = backend.stream(
            ChatRequest(messages=(Message("user", "hi"),), model=upstream.model(behaviour))
        )
        stream.open()
        return stream

    return open_stream


def read_all(stream, timeout=10.0):
    """Every event up to the finish; a stream that never finishes fails after `timeout` seconds
    (a finished body or a closed stream reads as no events, which alone would loop for ever)."""
    deadline = time.monotonic() + timeout
    events: list[BackendEvent] = []
    while not (events and isinstance(events[-1], Finish)):
        left = deadline - time.monotonic()
        assert left > 0, f"no finish within {timeout} s, after {events}"
        events += stream.read(min(left, 5.0))
    return events


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_chunked_answer_is_read_from_the_socket(request, monkeypatch, scheme, open_stream):
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
def test_other_bodies_are_read_through_httpx(upstream, behaviour, open_stream):
    stream = open_stream(upstream, behaviour)
    assert type(stream._body) is ThreadedBody
    events = read_all(stream)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == behaviour.text
    stream.close()
