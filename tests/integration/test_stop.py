"""Stop means stop: the upstream ends when the client leaves or asks, even while the model is silent."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from harness.gunicorn import GunicornServer
from tests.conftest import upstream_env
from tests.support.fake_upstream import Behaviour, RequestRecord
from tests.support.sse_client import StreamResult, ask, post_chat
from tests.support.waiting import wait_until

LONG = tuple(f" w{i}" for i in range(2000))


def assert_upstream_closed_soon(upstream, model, hung_up_at, within_s):
    record = upstream.wait_for_request(model)
    assert record.ended.wait(within_s + 2), "the upstream request is still open"
    assert record.outcome in ("client_closed", "dropped")
    assert record.ended_at - hung_up_at < within_s, f"took {record.ended_at - hung_up_at:.2f} s"


def post_json(url: str, body: bytes = b"{}") -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(silent=True),
        Behaviour(silent_before_headers=True),
        Behaviour(tokens=LONG, token_interval_s=0.1),
        Behaviour(tokens=LONG * 5, token_interval_s=0.0005),
        Behaviour(tokens=LONG, token_interval_s=0.1, gzip=True),  # read through httpx, not the socket
        Behaviour(silent=True, framing="close"),
    ],
    ids=["silent-after-headers", "silent-before-headers", "trickling", "fast", "gzip", "silent-unchunked"],
)
def test_client_abort_closes_the_upstream_within_a_second(gunicorn_app, upstream, behaviour):
    model = upstream.model(behaviour)
    silent = behaviour.silent or behaviour.silent_before_headers

    if silent:  # hang up once the upstream has the request and is saying nothing
        result = post_chat(
            gunicorn_app.url, ask(model), hang_up_when=lambda: bool(upstream.requests_for(model))
        )
    else:
        result = post_chat(gunicorn_app.url, ask(model), stop_when=lambda r: len(r.named("token")) >= 3)
    assert result.hung_up_at is not None
    assert_upstream_closed_soon(upstream, model, result.hung_up_at, within_s=1.0)


def test_stop_endpoint_ends_a_running_stream_with_cancelled(gunicorn_app, upstream):
    model = upstream.model(Behaviour(tokens=LONG, token_interval_s=0.05))
    stop_answers: list[tuple[int, Any]] = []

    def stop_once(result):
        if len(result.named("token")) == 3 and not stop_answers:
            stream_id = result.events[0].json()["stream_id"]
            stop_answers.append(post_json(f"{gunicorn_app.url}/api/chat/{stream_id}/stop"))
        return False

    result = post_chat(gunicorn_app.url, ask(model), stop_when=stop_once)
    assert stop_answers == [(202, {"stopped": True})]
    assert result.names[-1] == "done"
    assert result.done == {"finish_reason": "cancelled"}
    assert 3 <= len(result.named("token")) < 20
    assert_upstream_closed_soon(upstream, model, result.closed_at, within_s=1.0)

    # Again, now that the stream has ended: harmless, and a clear 404.
    stream_id = result.events[0].json()["stream_id"]
    status, body = post_json(f"{gunicorn_app.url}/api/chat/{stream_id}/stop")
    assert (status, body["error"]["code"]) == (404, "stream_not_found")


def test_stop_endpoint_with_an_unknown_id_is_404(gunicorn_app):
    status, body = post_json(f"{gunicorn_app.url}/api/chat/not-a-stream/stop")
    assert status == 404
    assert body["error"]["code"] == "stream_not_found"


STRICT = {
    "CHATAPP_UPSTREAM_IDLE_S": "0.5",
    "CHATAPP_WRITE_TIMEOUT_S": "1",
    "CHATAPP_MAX_STREAM_S": "3",
    "CHATAPP_HEARTBEAT_S": "0.2",
    "CHATAPP_DEBUG_STATS": "1",
}


def test_a_silent_upstream_is_cut_after_the_idle_timeout(chatapp_server, upstream):
    strict_app = chatapp_server(upstream, **STRICT)
    model = upstream.model(Behaviour(first_token_delay_s=5))
    started = time.monotonic()
    result = post_chat(strict_app.url, ask(model))
    assert time.monotonic() - started < 2.5
    assert result.names[-2:] == ["error", "done"]
    assert result.named("error")[0].json()["code"] == "upstream_timeout"
    assert result.done == {"finish_reason": "error"}


def test_a_stream_over_the_total_cap_is_cut(chatapp_server, upstream):
    strict_app = chatapp_server(upstream, **STRICT)
    model = upstream.model(Behaviour(tokens=LONG, token_interval_s=0.1))
    result = post_chat(strict_app.url, ask(model))
    assert 2.5 < result.closed_at - result.opened_at < 5
    assert result.named("error")[0].json()["code"] == "upstream_timeout"
    assert result.done == {"finish_reason": "error"}


def test_a_client_that_stops_reading_is_cut_after_the_write_timeout(chatapp_server, upstream):
    strict_app = chatapp_server(upstream, **STRICT)
    model = upstream.model(Behaviour(tokens=tuple("x" * 200 for _ in range(50_000))))
    client = socket.create_connection(("127.0.0.1", strict_app.port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = json.dumps(ask(model)).encode()
    client.sendall(
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    try:
        # Never read: the server's socket buffer fills and its write blocks.
        record = upstream.wait_for_request(model)
        assert record.ended.wait(8), "the upstream is still streaming into a stuck client"
        assert record.outcome == "client_closed"
        assert record.ended_at - record.opened_at < 6
    finally:
        client.close()
    assert wait_until(lambda: "cause=write_timeout" in strict_app.output(), 5)


def worker_stats(server):
    with urllib.request.urlopen(f"{server.url}/debug/stats", timeout=5) as response:
        return json.loads(response.read())


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_200_streams_aborted_at_random_moments_leave_nothing_behind(chatapp_server, upstream):
    stats_app = chatapp_server(upstream, CHATAPP_DEBUG_STATS="1")
    (worker,) = stats_app.worker_pids()
    model = upstream.model(Behaviour(tokens=LONG, first_token_delay_s=0.2, token_interval_s=0.02))
    warm_up = upstream.model()
    post_chat(stats_app.url, ask(warm_up))  # warm up: the SDK client and its pool exist
    # The baseline is taken once the warm-up stream has ended on both sides.
    assert upstream.wait_for_request(warm_up).ended.wait(5)
    assert wait_until(lambda: worker_stats(stats_app)["streams"] == 0, 5)
    fds_before, greenlets_before = open_fds(worker), worker_stats(stats_app)["greenlets"]

    rng = random.Random(7)

    def abort_at_random(i):
        """Hang up at a random moment after the upstream got this stream's request."""
        delay = rng.uniform(0.0, 1.5)

        found: list[RequestRecord] = []

        def upstream_has_had_it_for_delay():
            if not found:
                time.sleep(0.02)
                found.extend(
                    r
                    for r in upstream.requests_for(model)
                    if r.body["messages"][0]["content"] == f"stream {i}"
                )
            return found and time.monotonic() - found[0].opened_at > delay

        return post_chat(
            stats_app.url, ask(model, f"stream {i}"), timeout=30, hang_up_when=upstream_has_had_it_for_delay
        )

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(abort_at_random, range(200)))
    assert all(r.status == 200 and r.hung_up_at for r in results), [
        r.names[-3:] for r in results if not r.hung_up_at
    ]

    records = upstream.requests_for(model)
    assert len(records) == 200
    assert wait_until(lambda: all(r.ended.is_set() for r in records), 10), sum(
        not r.ended.is_set() for r in records
    )
    assert {r.outcome for r in records} == {"client_closed"}
    assert wait_until(lambda: worker_stats(stats_app)["streams"] == 0, 5)
    assert wait_until(lambda: open_fds(worker) <= fds_before, 5), (open_fds(worker), fds_before)
    assert wait_until(lambda: worker_stats(stats_app)["greenlets"] <= greenlets_before, 5)
    assert "Traceback" not in stats_app.output()


def test_sigterm_ends_open_streams_cleanly_within_the_graceful_timeout(upstream):
    """The answers end before gunicorn's deadline (each with `done`, none cut by SIGKILL), and
    gunicorn exits: 2.5 s after the signal here, loaded; at twice the graceful timeout, it hangs."""
    graceful_s = 3
    server = GunicornServer(upstream_env(upstream, GUNICORN_GRACEFUL_TIMEOUT=str(graceful_s))).start()
    model = upstream.model(Behaviour(tokens=LONG, token_interval_s=0.05))
    results: list[StreamResult | OSError] = []
    streaming = threading.Barrier(21)

    def client():
        flagged: list[bool] = []

        def note(r):
            if r.named("token") and not flagged:
                flagged.append(True)
                streaming.wait()
            return False

        try:
            results.append(post_chat(server.url, ask(model), timeout=20, stop_when=note))
        except OSError as error:
            results.append(error)

    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    streaming.wait(timeout=15)
    sent_at = time.monotonic()
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGTERM)
    server.process.wait(timeout=10)
    exited_after = time.monotonic() - sent_at
    for t in threads:
        t.join(10)

    assert exited_after < 2 * graceful_s, f"gunicorn took {exited_after:.1f} s to exit"
    assert len(results) == 20
    for result in results:
        assert not isinstance(result, Exception), result
        assert result.done == {"finish_reason": "cancelled"}
    records = upstream.requests_for(model)
    assert len(records) == 20
    assert all(r.ended.wait(2) for r in records), "an upstream connection was left open"
    assert "Traceback" not in server.output()
