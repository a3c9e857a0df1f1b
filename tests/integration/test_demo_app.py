"""The README's run command, as written, with no configuration: the offline demo model streams at once."""

import pytest

from harness.gunicorn import GunicornServer
from harness.processes import StartupError
from tests.support.sse_client import ask, post_chat


@pytest.fixture
def demo_app(chatapp_server):
    return chatapp_server()  # no OPENAI_* or CHATAPP_* variables at all


def test_the_demo_model_streams_at_once(demo_app):
    """The first bytes come before the model's first token (0.4 s in), and the first token early in
    an answer of several seconds, not with the rest of it; how soon is a figure for bench/."""
    result = post_chat(demo_app.url, ask(), timeout=30)
    assert result.status == 200
    assert result.events[0].event == "start"
    assert result.events[0].json()["model"] == "chatapp-demo"
    first_token = result.named("token")[0]
    assert result.first_byte_at is not None
    assert result.first_byte_at < first_token.at
    assert first_token.at - result.opened_at < (result.closed_at - result.opened_at) / 4
    assert result.done == {"finish_reason": "stop"}
    assert len(result.text) > 300


def test_the_demo_tokens_arrive_over_time_not_all_at_once(demo_app):
    result = post_chat(demo_app.url, ask(content="pace", max_tokens=30))
    tokens = result.named("token")
    assert len(tokens) == 30
    assert tokens[-1].at - tokens[0].at > 0.5  # about 30 tokens/s
    assert result.done == {"finish_reason": "length"}


def test_health_check(demo_app):
    import json
    import urllib.request

    with urllib.request.urlopen(f"{demo_app.url}/healthz") as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WEB_CONCURRENCY", "many"),
        ("CHATAPP_WORKER_CONNECTIONS", "0"),
        ("GUNICORN_TIMEOUT", "soon"),
        ("GUNICORN_GRACEFUL_TIMEOUT", "-1"),
        ("GUNICORN_KEEPALIVE", "x"),
        ("GUNICORN_KEEPALIVE", "0"),
        ("GUNICORN_LOGLEVEL", "loud"),
        ("CHATAPP_HEADER_TIMEOUT_S", "0"),
        ("CHATAPP_BODY_IDLE_S", "soon"),
        ("CHATAPP_BODY_TIMEOUT_S", "-5"),
        ("CHATAPP_BODY_IDLE_S", "90"),  # longer than the whole body's 60 s
        ("CHATAPP_MAX_WAITING_CONNECTIONS_PER_CLIENT", "-1"),
        ("CHATAPP_LOG_LEVEL", "loud"),
    ],
)
def test_a_bad_server_setting_stops_start_up_naming_the_variable(variable, value):
    server = GunicornServer({variable: value}, workers=None if variable == "WEB_CONCURRENCY" else 1)
    with pytest.raises(StartupError) as failed:
        server.start(timeout=20)
    assert variable in str(failed.value)
