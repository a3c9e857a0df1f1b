"""chatapp under real gunicorn (gevent worker) relaying the real openai SDK from a local upstream."""

import http.client
import json
from typing import Any

import pytest

from harness.gunicorn import GunicornServer
from harness.processes import free_port
from tests.conftest import upstream_env
from tests.support.fake_upstream import Behaviour
from tests.support.sse_client import ask, post_chat

CONTRACT_ORDER = ["start", "reasoning", "token", "usage", "error", "done"]


def assert_contract_order(names):
    positions = [CONTRACT_ORDER.index(n) for n in names]
    assert positions == sorted(positions), names
    assert names[0] == "start"
    assert names[-1] == "done"
    assert names.count("done") == 1


def test_relayed_text_equals_the_upstream_text_exactly(gunicorn_app, upstream):
    behaviour = Behaviour()
    result = post_chat(gunicorn_app.url, ask(upstream.model(behaviour)))
    assert result.status == 200
    assert result.text == behaviour.text
    assert "\r\n" in result.text
    assert "🚀" in result.text
    assert "中文" in result.text
    assert [e.json()["text"] for e in result.named("token")] == list(behaviour.tokens)


@pytest.mark.parametrize(
    "behaviour",
    [Behaviour(framing="close"), Behaviour(gzip=True), Behaviour(gzip=True, split_utf8=True)],
    ids=["ended by close", "gzip", "gzip, split characters"],
)
def test_bodies_chatapp_cannot_read_from_the_socket_are_relayed_through_httpx(
    gunicorn_app, upstream, behaviour
):
    """Not chunked, or compressed: the relay falls back to httpx's own decoding, with the same result."""
    result = post_chat(gunicorn_app.url, ask(upstream.model(behaviour)))
    assert_contract_order(result.names)
    assert result.text == behaviour.text
    assert result.done == {"finish_reason": "stop"}


def test_a_finished_answer_leaves_its_upstream_connection_for_the_next(served):
    app, upstream = served
    model = upstream.model()
    for _ in range(3):
        assert post_chat(app.url, ask(model)).done == {"finish_reason": "stop"}
    peers = {r.peer for r in upstream.requests_for(model)}
    assert len(peers) == 1, "each answer opened a new connection to the model server"


def test_an_abandoned_answer_closes_its_upstream_connection_and_the_next_one_is_clean(gunicorn_app, upstream):
    slow = upstream.model(Behaviour(token_interval_s=0.2))
    post_chat(gunicorn_app.url, ask(slow), stop_when=lambda r: len(r.named("token")) >= 2)
    record = upstream.requests_for(slow)[0]
    assert record.ended.wait(5)
    assert record.outcome == "client_closed"
    model = upstream.model()
    result = post_chat(gunicorn_app.url, ask(model))
    assert result.text == Behaviour().text
    assert upstream.requests_for(model)[0].peer != upstream.requests_for(slow)[0].peer


def test_events_come_in_contract_order_with_ids(gunicorn_app, upstream):
    result = post_chat(gunicorn_app.url, ask(upstream.model(Behaviour(reasoning=("let me", " think")))))
    assert_contract_order(result.names)
    stream_id = result.events[0].json()["stream_id"]
    assert [e.id for e in result.events] == [f"{stream_id}:{n}" for n in range(1, len(result.events) + 1)]
    assert all("\n" not in e.data for e in result.events)


def test_response_headers_follow_the_contract(gunicorn_app, upstream):
    result = post_chat(gunicorn_app.url, ask(upstream.model()), headers={"Accept-Encoding": "gzip"})
    assert result.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert result.headers["cache-control"] == "no-cache, no-transform"
    assert result.headers["x-accel-buffering"] == "no"
    assert "content-length" not in result.headers
    assert "content-encoding" not in result.headers


def test_a_keep_alive_comment_opens_the_stream(gunicorn_app, upstream):
    result = post_chat(gunicorn_app.url, ask(upstream.model()))
    assert result.body.startswith(b": keep-alive\n\n")


def test_usage_is_forwarded(gunicorn_app, upstream):
    behaviour = Behaviour()
    result = post_chat(gunicorn_app.url, ask(upstream.model(behaviour)))
    usage = result.named("usage")[0].json()
    assert usage["completion_tokens"] == len(behaviour.tokens)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert result.done == {"finish_reason": "stop"}


def test_the_sdk_sends_the_conversation_and_options_upstream(gunicorn_app, upstream):
    model = upstream.model()
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "second 中文"},
    ]
    post_chat(gunicorn_app.url, {"messages": messages, "model": model, "max_tokens": 7, "temperature": 0.5})
    body = upstream.requests_for(model)[0].body
    assert body["messages"] == messages
    assert (body["stream"], body["max_tokens"], body["temperature"]) == (True, 7, 0.5)
    assert body["stream_options"] == {"include_usage": True}


def test_reasoning_deltas_are_relayed_as_reasoning_events(gunicorn_app, upstream):
    result = post_chat(gunicorn_app.url, ask(upstream.model(Behaviour(reasoning=("step 1", "\nstep 2")))))
    assert [e.json()["text"] for e in result.named("reasoning")] == ["step 1", "\nstep 2"]


def test_length_finish_is_relayed(gunicorn_app, upstream):
    result = post_chat(gunicorn_app.url, ask(upstream.model(Behaviour(finish_reason="length"))))
    assert result.done == {"finish_reason": "length"}


@pytest.mark.parametrize("split", ["split_events", "split_utf8"])
def test_text_survives_events_and_characters_split_across_writes(served, split):
    app, upstream = served
    options: dict[str, Any] = {split: True}
    behaviour = Behaviour(**options)
    result = post_chat(app.url, ask(upstream.model(behaviour)))
    assert result.text == behaviour.text
    assert result.done == {"finish_reason": "stop"}


def test_a_server_that_rejects_stream_options_is_asked_again_without_it(upstream):
    # Its own server: the fallback is remembered per base URL for the life of the worker.
    server = GunicornServer(upstream_env(upstream)).start()
    try:
        model = upstream.model(Behaviour(reject_stream_options=True))
        first = post_chat(server.url, ask(model))
        second = post_chat(server.url, ask(model))
    finally:
        server.stop()
    assert first.text == second.text == Behaviour().text
    assert "usage" not in first.names
    sent = ["stream_options" in r.body for r in upstream.requests_for(model)]
    assert sent == [True, False, False]


FAILURES = [
    (Behaviour(status=401), "upstream_auth", "OPENAI_API_KEY"),
    (Behaviour(status=403), "upstream_permission", "not allowed"),
    (Behaviour(status=404), "upstream_not_found", "not found"),
    (Behaviour(status=429, retry_after="1"), "upstream_rate_limited", "Wait a moment"),
    (Behaviour(status=500), "upstream_server_error", "HTTP 500"),
    (Behaviour(status=503), "upstream_server_error", "HTTP 503"),
    (Behaviour(status=400), "upstream_bad_request", "rejected the request"),
    (Behaviour(drop_after=3), "upstream_disconnected", "lost"),
    (Behaviour(malformed_after=3), "upstream_malformed", "could not read"),
    (Behaviour(incomplete_after=3), "upstream_incomplete", "ended the answer early"),
]


@pytest.mark.parametrize(
    ("behaviour", "code", "hint"), FAILURES, ids=[f[1] + "-" + str(i) for i, f in enumerate(FAILURES)]
)
def test_each_upstream_failure_is_error_then_done_error(gunicorn_app, upstream, behaviour, code, hint):
    result = post_chat(gunicorn_app.url, ask(upstream.model(behaviour)), timeout=15)
    assert result.status == 200
    assert_contract_order(result.names)
    assert result.names[-2:] == ["error", "done"]
    error = result.named("error")[0].json()
    assert error["code"] == code
    assert hint in error["message"]
    assert result.done == {"finish_reason": "error"}
    # Text that came before the failure is kept.
    streamed = behaviour.tokens[
        : next(
            n
            for n in (behaviour.drop_after, behaviour.malformed_after, behaviour.incomplete_after, 0)
            if n is not None
        )
    ]
    assert result.text == "".join(streamed)
    # And the worker goes on serving.
    after = post_chat(gunicorn_app.url, ask(upstream.model()))
    assert after.done == {"finish_reason": "stop"}


@pytest.mark.parametrize(
    ("base_url", "hint"),
    [
        ("http://127.0.0.1:{free}/v1", "could not connect"),  # connection refused
        ("http://chatapp-upstream.invalid/v1", "look up"),  # DNS failure (.invalid never resolves)
        ("https://127.0.0.1:{upstream}/v1", "TLS"),  # TLS to a server that speaks plain HTTP
    ],
    ids=["refused", "dns", "tls"],
)
def test_an_unreachable_upstream_is_an_error_event(chatapp_server, upstream, base_url, hint):
    url = base_url.format(free=free_port(), upstream=upstream.port)
    server = chatapp_server(OPENAI_BASE_URL=url, CHATAPP_UPSTREAM_MAX_RETRIES="0")
    result = post_chat(server.url, ask("any"), timeout=15)
    assert result.names == ["start", "error", "done"]
    error = result.named("error")[0].json()
    assert error["code"] == "upstream_unreachable"
    assert hint in error["message"]


def test_body_over_the_limit_without_content_length_is_413(gunicorn_app):
    """Chunked uploads have no Content-Length to check up front; the limit still holds."""
    host, port = gunicorn_app.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps(ask(content="x" * 2_000_000)).encode()
    conn.request(
        "POST",
        "/api/chat",
        body=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "body_too_large"
    conn.close()


def test_invalid_requests_make_no_upstream_call(gunicorn_app, upstream):
    model = upstream.model()
    result = post_chat(gunicorn_app.url, ask(model, ""))
    assert result.status == 400
    assert result.error_json()["error"]["code"] == "empty_message"
    assert upstream.requests_for(model) == []


def test_done_names_the_model_that_answered_when_the_server_swapped_it(gunicorn_app, upstream):
    """llama.cpp's server answers any model name with the model it has loaded: `start` names the
    model asked for, and `done` the one the upstream's chunks say answered."""
    model = upstream.model(Behaviour(served_model="llama-3.2-3b-instruct"))
    result = post_chat(gunicorn_app.url, ask(model))
    assert result.named("start")[0].json()["model"] == model
    assert result.done == {"finish_reason": "stop", "model": "llama-3.2-3b-instruct"}


def test_done_names_no_model_when_the_one_asked_for_answered(gunicorn_app, upstream):
    assert post_chat(gunicorn_app.url, ask(upstream.model())).done == {"finish_reason": "stop"}
