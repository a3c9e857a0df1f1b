"""One gevent worker serves many streams at once, and lets go of the upstream when the client leaves."""

import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.fake_upstream import Behaviour
from tests.support.sse_client import ask, post_chat

TRICKLE = Behaviour(tokens=tuple(f" t{i}" for i in range(20)), token_interval_s=0.05)


def test_100_concurrent_streams_in_one_worker_overlap_and_all_complete(gunicorn_app, upstream):
    model = upstream.model(TRICKLE)
    single = post_chat(gunicorn_app.url, ask(model))
    one_stream_s = single.closed_at - single.opened_at

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda _: post_chat(gunicorn_app.url, ask(model), timeout=60), range(100)))
    total_s = time.monotonic() - started

    assert all(r.done == {"finish_reason": "stop"} for r in results)
    assert all(r.text == TRICKLE.text for r in results)
    # Every stream was open while every other was: the latest start precedes the earliest end.
    assert max(r.first_byte_at for r in results) < min(r.closed_at for r in results)
    # Served side by side: close to one stream's time, nowhere near a hundred.
    assert total_s < one_stream_s * 4, (total_s, one_stream_s)


def test_client_disconnect_mid_stream_closes_the_upstream_within_2_s(gunicorn_app, upstream):
    model = upstream.model(Behaviour(tokens=tuple(f" w{i}" for i in range(400)), token_interval_s=0.05))
    result = post_chat(gunicorn_app.url, ask(model), stop_when=lambda r: len(r.named("token")) >= 3)
    hung_up = result.closed_at
    record = upstream.wait_for_request(model)
    assert record.ended.wait(5), "the upstream request is still open"
    assert record.outcome == "client_closed"
    assert record.ended_at - hung_up < 2.0


def test_heartbeats_flow_while_the_upstream_is_silent(chatapp_server, upstream):
    fast_heartbeat_app = chatapp_server(upstream, CHATAPP_HEARTBEAT_S="0.2")
    model = upstream.model(Behaviour(silent=True))
    result = post_chat(
        fast_heartbeat_app.url, ask(model), stop_when=lambda r: r.body.count(b": keep-alive") >= 5
    )
    assert result.names == ["start"]
    assert result.comments.count("keep-alive") >= 5
    assert result.closed_at - result.first_byte_at >= 0.2 * 3  # paced by CHATAPP_HEARTBEAT_S, not a burst
    # Hanging up during the silence is noticed on the next heartbeat, and the upstream is let go.
    record = upstream.wait_for_request(model)
    assert record.ended.wait(3), "the upstream request is still open"
    assert record.outcome == "client_closed"
