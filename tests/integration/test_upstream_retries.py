"""Which upstream failures the SDK retries before the stream starts (docs/api.md): 429, 5xx and
connection errors, never a server that took the request and then sent nothing."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.fake_upstream import Behaviour
from tests.support.sse_client import ask, post_chat

IDLE_S = 1.0
RETRIES = {"CHATAPP_UPSTREAM_MAX_RETRIES": "2", "CHATAPP_UPSTREAM_IDLE_S": f"{IDLE_S:g}"}


def error_code(result) -> str:
    assert result.names[-2:] == ["error", "done"], result.names
    code: str = result.named("error")[0].json()["code"]
    return code


def test_silence_before_the_headers_is_not_retried(chatapp_server, upstream):
    """Regression: the SDK re-sent a request whose server never answered after each idle period
    (up to 3 times CHATAPP_UPSTREAM_IDLE_S, the model running each time)."""
    server = chatapp_server(upstream, **RETRIES)
    model = upstream.model(Behaviour(silent_before_headers=True))
    result = post_chat(server.url, ask(model), timeout=15)
    assert error_code(result) == "upstream_timeout"
    error_at = result.named("error")[0].at - result.opened_at
    # One idle period; a retry would add a back-off (>= 0.375 s) and a second idle period.
    assert IDLE_S <= error_at < 2 * IDLE_S
    (only,) = upstream.requests_for(model)
    assert only.ended.wait(5)  # and the upstream saw its connection close: the model can stop


@pytest.mark.parametrize(
    ("status", "code"), [(500, "upstream_server_error"), (429, "upstream_rate_limited")], ids=["500", "429"]
)
def test_an_error_status_is_retried(chatapp_server, upstream, status, code):
    server = chatapp_server(upstream, **RETRIES)
    model = upstream.model(Behaviour(status=status))
    result = post_chat(server.url, ask(model), timeout=15)
    assert error_code(result) == code
    assert len(upstream.requests_for(model)) == 3  # the request and two retries


@pytest.fixture
def hang_up_server() -> Iterator[tuple[str, list[int]]]:
    """A server that accepts each connection and closes it at once: its base URL, and a list
    that grows by one per connection it took."""
    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[int] = []

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while True:
                conn, _ = listener.accept()
                taken.append(1)
                conn.close()

    threading.Thread(target=serve, name="hang-up-server", daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", taken
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone would not)
    listener.close()


def test_a_connection_closed_without_an_answer_is_retried(chatapp_server, hang_up_server):
    base_url, taken = hang_up_server
    server = chatapp_server(OPENAI_BASE_URL=base_url, CHATAPP_RATE_LIMIT="", **RETRIES)
    try:
        result = post_chat(server.url, ask("any"), timeout=15)
    finally:
        chatapp_server.retire(server)
    assert error_code(result) == "upstream_unreachable"
    assert len(taken) == 3
