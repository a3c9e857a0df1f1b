"""Two chatapp instances (two gunicorn masters with two gevent workers each, as two machines) sharing
one Redis and one PostgreSQL: a stop reaches the answer wherever it runs, at its first publish; the
per-client cap and the rate limit count a client across instances; and Redis restarted mid-stream
ends no stream in flight, fails no request with a 500, and is used again once it is back."""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis as redis_client

from chatapp.streaming.coordination.redis_coordinator import STOP_ACK_S, STOP_RESEND_S
from harness.gunicorn import GunicornServer
from harness.redis import RedisServer
from tests.conftest import Machines
from tests.integration.test_stop import LONG
from tests.support.answers import (
    Background,
    assert_one_gapless_answer,
    final_answer,
    new_conversation,
    send,
    stop,
    stream_id_of,
    wire,
)
from tests.support.fake_upstream import Behaviour, FakeUpstream
from tests.support.json_client import call
from tests.support.sse_client import StreamResult, ask, follow_stream, post_chat
from tests.support.waiting import wait_until

# Tokens 20 ms apart: the upstream waits between them, and notices a close at once.
TRICKLE = Behaviour(tokens=LONG, token_interval_s=0.02)
# About three seconds of answer: long enough to outlive what a test does in the middle of it.
THREE_S = tuple(f" w{i}" for i in range(150))
# A stop is taken at its first publish, before the stop endpoint would send it again: 2-30 ms
# here even with the machine loaded five times over (the figures are bench.resumable's).
STOP_WITHIN_S = STOP_RESEND_S
RUNS = 10


@pytest.fixture(scope="module")
def pair(two_machines: tuple[GunicornServer, GunicornServer]) -> tuple[GunicornServer, GunicornServer]:
    """Two instances sharing Redis and PostgreSQL, as two machines."""
    return two_machines


def stopped_elsewhere(
    started_on: GunicornServer, stop_via: GunicornServer, upstream: FakeUpstream, conversation: bool
) -> tuple[float, StreamResult, str]:
    """Stream an answer from `started_on` and stop it through `stop_via` after its third token:
    the seconds from just before the stop was sent to the upstream connection closing."""
    model = upstream.model(TRICKLE)
    asked: list[float] = []

    def stop_at_third_token(result: StreamResult) -> bool:
        if len(result.named("token")) >= 3 and not asked:
            asked.append(time.monotonic())
            assert stop(stop_via.url, stream_id_of(result)) == (202, {"stopped": True})
        return False

    if conversation:
        conversation_id = new_conversation(started_on.url, model)
        result = send(started_on.url, conversation_id, stop_when=stop_at_third_token)
    else:
        conversation_id = ""
        result = post_chat(started_on.url, ask(model), stop_when=stop_at_third_token)
    record = upstream.wait_for_request(model)
    assert record.ended.wait(2), "the upstream request is still open"
    assert record.outcome == "client_closed"
    assert result.done == {"finish_reason": "cancelled"}
    assert record.ended_at is not None
    return record.ended_at - asked[0], result, conversation_id


@pytest.mark.parametrize("conversation", [True, False], ids=["conversation-answer", "api-chat"])
def test_a_stop_through_the_other_instance_closes_the_upstream_at_its_first_publish(
    pair, upstream, conversation
):
    """Ten answers, alternately on each instance, each stopped through the other one."""
    a, b = pair
    latencies = []
    for run in range(RUNS):
        started_on, stop_via = (a, b) if run % 2 == 0 else (b, a)
        latency, result, conversation_id = stopped_elsewhere(started_on, stop_via, upstream, conversation)
        latencies.append(latency)
        if conversation:
            answer = final_answer(a.url, conversation_id)
            assert (answer["status"], answer["finish_reason"]) == ("stopped", "cancelled")
            assert answer["content"] == result.text
    figures = [f"{s * 1000:.1f}" for s in sorted(latencies)]
    print(
        f"stop across instances ({'conversation' if conversation else '/api/chat'}): "
        f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; {figures}"
    )
    assert max(latencies) < STOP_WITHIN_S, figures


def test_a_stop_for_no_running_stream_is_404_through_either_instance(pair, upstream):
    a, _ = pair
    conversation_id = new_conversation(a.url, upstream.model(Behaviour(tokens=("done",))))
    ended = send(a.url, conversation_id)
    assert ended.done == {"finish_reason": "stop"}
    for server in pair:
        for stream_id in ("not-a-stream", "q3Zb2f0n8E6Hn1hVQ7bA2w", stream_id_of(ended)):
            status, body = stop(server.url, stream_id)
            assert (status, body["error"]["code"]) == (404, "stream_not_found"), (server.url, stream_id)


# -- per-client cap and rate limit across instances ----------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own: its counts of this client start at zero."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_pair(machines: Machines, own_redis: RedisServer) -> Iterator[Callable[..., list[GunicornServer]]]:
    """`own_pair(**env)`: two instances sharing the test's own Redis, stopped when the test ends."""
    started: list[list[GunicornServer]] = []

    def start(workers: int = 2, **env: str) -> list[GunicornServer]:
        # `args` named (as its default): mypy cannot tell that `env` fills none of start()'s keywords.
        started.append(machines.start(2, redis=own_redis, workers=workers, args=None, **env))
        return started[-1]

    yield start
    for servers in started:
        machines.retire(servers)


def test_the_per_client_cap_counts_streams_on_every_instance(own_pair, upstream):
    a, b = own_pair(CHATAPP_MAX_STREAMS_PER_CLIENT="2")
    long_model, quick_model = upstream.model(TRICKLE), upstream.model(Behaviour(tokens=("ok",)))
    first = Background(functools.partial(send, a.url, new_conversation(a.url, long_model)))
    second = Background(functools.partial(post_chat, b.url, ask(long_model)))
    first.wait_for_tokens(1)
    second.wait_for_tokens(1)

    conversation_id = new_conversation(b.url, quick_model)
    for server in (b, a):
        refused = send(server.url, conversation_id)
        assert (refused.status, refused.error_json()["error"]["code"]) == (429, "too_many_streams")
        assert int(refused.headers["retry-after"]) > 0
        refused = post_chat(server.url, ask(quick_model))
        assert (refused.status, refused.error_json()["error"]["code"]) == (429, "too_many_streams")

    assert stop(b.url, first.stream_id) == (202, {"stopped": True})
    assert first.result().done == {"finish_reason": "cancelled"}
    # Its slot is given back once the answer has ended (and saved), a moment after its `done`.
    admitted: list[StreamResult] = []

    def admitted_on_b() -> bool:
        admitted.append(post_chat(b.url, ask(quick_model)))
        return admitted[-1].status == 200

    assert wait_until(admitted_on_b)
    assert admitted[-1].done == {"finish_reason": "stop"}
    assert {r.status for r in admitted} <= {200, 429}

    assert stop(a.url, second.stream_id) == (202, {"stopped": True})
    assert second.result().done == {"finish_reason": "cancelled"}


def test_the_rate_limit_counts_a_client_on_every_instance_through_chatapp_redis_url(own_pair, upstream):
    """CHATAPP_REDIS_URL alone shares the limit: no CHATAPP_RATELIMIT_STORAGE_URI is needed."""
    a, b = own_pair(workers=1, CHATAPP_RATE_LIMIT="3/minute")
    model = upstream.model(Behaviour(tokens=("ok",)))
    assert [post_chat(server.url, ask(model)).status for server in (a, b, a)] == [200, 200, 200]
    refused = post_chat(b.url, ask(model))
    assert (refused.status, refused.error_json()["error"]["code"]) == (429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0

    # One budget for every way of starting a stream: a conversation's message counts too.
    refused = send(a.url, new_conversation(a.url, model))
    assert (refused.status, refused.error_json()["error"]["code"]) == (429, "rate_limited")


# -- Redis restarted mid-stream ----------------------------------------------------------------


def stop_listeners(server: RedisServer) -> int:
    """How many worker processes listen for stops on Redis now."""
    with redis_client.Redis.from_url(server.uri, socket_timeout=2) as client:
        listeners: int = dict(client.pubsub_numsub("chatapp:stop"))[b"chatapp:stop"]
        return listeners


def test_redis_restarted_mid_stream_ends_no_stream_and_fails_no_request(own_pair, own_redis, upstream):
    a, b = own_pair()
    assert wait_until(lambda: stop_listeners(own_redis) == 4, 10)
    behaviour = Behaviour(tokens=THREE_S, token_interval_s=0.02)
    model = upstream.model(behaviour)
    conversations = {a: new_conversation(a.url, model), b: new_conversation(b.url, model)}
    answers = {s: Background(functools.partial(send, s.url, c)) for s, c in conversations.items()}
    chats = {server: Background(functools.partial(post_chat, server.url, ask(model))) for server in (a, b)}
    for reader in [*answers.values(), *chats.values()]:
        reader.wait_for_tokens(10)
    statuses: list[int] = []

    own_redis.stop()
    down_at = time.monotonic()
    # While Redis is down: the other instance cannot reach the stream, and says so at once.
    for here, there in ((a, b), (b, a)):
        status, body = stop(here.url, answers[there].stream_id)
        statuses.append(status)
        assert (status, body["error"]["code"]) == (503, "shared_state_unavailable")
        followed = follow_stream(here.url, answers[there].stream_id, after=0, timeout=10)
        statuses.append(followed.status)
        assert (followed.status, followed.error_json()["error"]["code"]) == (503, "shared_state_unavailable")
        assert int(followed.headers["retry-after"]) > 0
    # New answers still stream, on the instance's own.
    quick = upstream.model(Behaviour(tokens=("still", " here")))
    during = [send(a.url, new_conversation(a.url, quick)), post_chat(b.url, ask(quick))]
    statuses += [r.status for r in during]
    assert [r.text for r in during] == ["still here"] * 2
    assert all(r.done == {"finish_reason": "stop"} for r in during)
    assert all(reader.live is not None and not reader.live.closed_at for reader in answers.values()), (
        "an answer ended while Redis was down"
    )
    assert time.monotonic() - down_at < 2, "requests waited for Redis"

    own_redis.start()
    back_at = time.monotonic()
    for server, reader in answers.items():
        result = reader.result()
        assert result.text == behaviour.text
        assert_one_gapless_answer(result.events, stream_id_of(result), behaviour.text, "stop")
        answer = final_answer(server.url, conversations[server])
        assert (answer["status"], answer["content"]) == ("complete", behaviour.text)
    for reader in chats.values():
        assert (reader.result().text, reader.result().done) == (behaviour.text, {"finish_reason": "stop"})

    # Every worker listens for stops again, and a stop crosses instances again.
    assert wait_until(lambda: stop_listeners(own_redis) == 4, 15), stop_listeners(own_redis)
    print(f"stop listeners back {time.monotonic() - back_at:.1f} s after Redis")
    for started_on, stop_via in ((a, b), (b, a)):
        latency, _, _ = stopped_elsewhere(started_on, stop_via, upstream, conversation=True)
        assert latency < STOP_WITHIN_S
    for server in (a, b):
        assert call("GET", f"{server.url}/healthz")[0] == 200
        statuses.append(stop(server.url, answers[a].stream_id)[0])
    assert 500 not in statuses
    for server in (a, b):
        output = server.output()
        assert "Traceback" not in output
        assert "Redis: could not" in output or "through Redis" in output, "the outage was not logged"


@dataclass
class ThroughARestart:
    runs_on: GunicornServer
    other: GunicornServer
    answer: Background
    conversation_id: str


@pytest.fixture
def through_an_empty_restart(machines, upstream) -> Iterator[ThroughARestart]:
    """An answer running on one instance (one worker) while Redis restarts empty, as one without
    persistence does; the other instance (one worker) must find it through Redis. Redis restarts
    while the model is silent before its first token: then no write to Redis was under way (one
    that fails makes the writer send the whole log again), which makes what follows certain."""
    with RedisServer() as server:
        a, b = machines.start(2, redis=server, workers=1)
        tokens = tuple(f" w{i}" for i in range(200))
        model = upstream.model(Behaviour(tokens=tokens, first_token_delay_s=1.5, token_interval_s=0.02))
        conversation_id = new_conversation(a.url, model)
        answer = Background(functools.partial(send, a.url, conversation_id))
        assert wait_until(lambda: answer.live is not None and answer.live.named("start"))
        assert wait_until(lambda: log_entries(server, answer.stream_id) > 0)
        server.restart()
        # Both processes are back on Redis (their stop listeners resubscribed, which is when each
        # puts back what Redis lost).
        assert wait_until(lambda: stop_listeners(server) == 2, 10)
        answer.wait_for_tokens(10)
        yield ThroughARestart(a, b, answer, conversation_id)
        stop(a.url, answer.stream_id)  # one worker: the one that runs it
        assert answer.result().done is not None
        machines.retire([a, b])


def log_entries(server: RedisServer, stream_id: str) -> int:
    with redis_client.Redis.from_url(server.uri, socket_timeout=2) as client:
        entries: int = client.xlen(f"chatapp:log:{stream_id}")
        return entries


def test_after_an_empty_redis_restart_the_other_instance_still_replays_the_whole_answer(
    through_an_empty_restart,
):
    it = through_an_empty_restart
    assert it.answer.live is not None
    assert not it.answer.live.closed_at, "the answer ended before the test"
    replayed = follow_stream(it.other.url, it.answer.stream_id, after=0)
    assert replayed.status == 200, replayed.body
    whole = it.answer.result()
    assert wire(replayed.events) == wire(whole.events)


def test_after_an_empty_redis_restart_the_other_instance_still_stops_a_running_answer(
    through_an_empty_restart, upstream
):
    it = through_an_empty_restart
    assert it.answer.live is not None
    assert not it.answer.live.closed_at, "the answer ended before the test"
    assert stop(it.other.url, it.answer.stream_id) == (202, {"stopped": True})
    assert it.answer.result().done == {"finish_reason": "cancelled"}


def test_a_stop_right_after_redis_came_back_with_its_data_still_ends_the_answer(
    own_pair, own_redis, upstream
):
    a, b = own_pair(workers=1)
    model = upstream.model(TRICKLE)
    answer = Background(functools.partial(send, a.url, new_conversation(a.url, model)))
    answer.wait_for_tokens(5)
    own_redis.restart(keep_data=True)
    asked_at = time.monotonic()
    status, _ = stop(b.url, answer.stream_id)
    try:
        record = upstream.wait_for_request(model)
        # The running process is still reconnecting to Redis: the stop waits for it (and is sent
        # again) rather than answer 202 for a stop nobody took.
        assert status == 202
        assert record.ended.wait(1), "202, and the answer goes on"
        assert record.ended_at - asked_at < STOP_ACK_S
    finally:
        stop(a.url, answer.stream_id)  # one worker: the one that runs it
        answer.result()
