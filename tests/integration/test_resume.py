"""Answers that outlive their connection (issue 12), against real parts: gunicorn with gevent
workers, redis-server, PostgreSQL, nginx, and the openai backend on the fake upstream.

A stored conversation's answer goes on when its connection drops, and `GET /api/streams/<id>`
reattaches to it from any worker or instance, with the same event ids, no gap and no duplicate;
an ended answer is replayed for CHATAPP_STREAM_RETENTION_S, an unread one ends after
CHATAPP_DETACHED_MAX_S; without Redis gunicorn runs one worker, on which all of this holds too.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterator, Sequence
from typing import TypedDict

import httpx2
import pytest

from harness.gunicorn import GunicornServer
from harness.nginx import NginxServer
from harness.processes import StartupError
from harness.redis import RedisServer
from tests.conftest import Machines, upstream_env
from tests.integration.test_nginx import read_events
from tests.integration.test_stop import LONG, assert_upstream_closed_soon
from tests.support.answers import (
    Background,
    assert_one_gapless_answer,
    final_answer,
    new_conversation,
    send,
    sequence_of,
    stop,
    stream_id_of,
    tokens_at_least,
    wire,
)
from tests.support.fake_upstream import DEFAULT_TOKENS, Behaviour
from tests.support.h2_client import H2Client
from tests.support.sse_client import SseDecoder, SseEvent, StreamResult, ask, follow_stream, post_chat
from tests.support.waiting import wait_until

# About 1.2 s of answer with every kind of text the fake upstream has (CR/LF, emoji, CJK).
VARIED = Behaviour(tokens=DEFAULT_TOKENS * 6, token_interval_s=0.01)
# About three seconds: it outlives what a test does in the middle of it.
THREE_S = Behaviour(tokens=tuple(f" w{i}" for i in range(150)), token_interval_s=0.02)
# Twenty seconds: it ends only when something ends it.
ENDLESS = Behaviour(tokens=LONG, token_interval_s=0.01)


class ShortLived(TypedDict):
    CHATAPP_STREAM_RETENTION_S: str
    CHATAPP_DETACHED_MAX_S: str


SHORT_LIVED: ShortLived = {"CHATAPP_STREAM_RETENTION_S": "1", "CHATAPP_DETACHED_MAX_S": "1"}


@pytest.fixture(scope="module")
def pair(two_machines: tuple[GunicornServer, GunicornServer]) -> tuple[GunicornServer, GunicornServer]:
    """Two instances sharing Redis and PostgreSQL, as two machines."""
    return two_machines


@pytest.fixture(scope="module")
def short_lived_pair(machines: Machines, redis: RedisServer) -> tuple[GunicornServer, GunicornServer]:
    """Two instances that keep an ended answer for 1 s, and end one that nobody reads after 1 s."""
    a, b = machines.start(2, redis=redis, **SHORT_LIVED)
    return a, b


@pytest.fixture(scope="module")
def alone(machines: Machines) -> GunicornServer:
    """chatapp without Redis and without WEB_CONCURRENCY, as the README runs it, but keeping an
    ended answer for 1 s and ending an unread one after 1 s."""
    (server,) = machines.start(1, redis=None, workers=None, **SHORT_LIVED)
    return server


def reference_run(server: GunicornServer, model: str) -> StreamResult:
    """The same answer, read without interruption."""
    result = send(server.url, new_conversation(server.url, model))
    assert result.done == {"finish_reason": "stop"}
    return result


def drop_then_reattach(
    started_on: GunicornServer, reattach_via: GunicornServer, model: str
) -> tuple[StreamResult, StreamResult, str]:
    """An answer whose connection drops after ten tokens, then reattached from its last event id:
    what each connection got, and the conversation."""
    conversation_id = new_conversation(started_on.url, model)
    first = send(started_on.url, conversation_id, stop_when=tokens_at_least(10))
    assert first.hung_up_at is not None
    assert first.done is None
    rest = follow_stream(reattach_via.url, stream_id_of(first), last_event_id=first.events[-1].id)
    assert rest.status == 200, rest.body
    assert rest.headers["content-type"].startswith("text/event-stream")
    return first, rest, conversation_id


# -- reattaching across instances ---------------------------------------------------------------


def test_a_dropped_answer_reattached_through_the_other_instance_is_the_uninterrupted_run(pair, upstream):
    a, b = pair
    model = upstream.model(VARIED)
    reference = reference_run(b, model)
    first, rest, conversation_id = drop_then_reattach(a, b, model)

    joined = first.events + rest.events
    stream_id = stream_id_of(first)
    assert_one_gapless_answer(joined, stream_id, VARIED.text, "stop")
    # Event for event what the uninterrupted run got, but for the ids the start event names.
    assert [(e.event, e.data) for e in joined[1:]] == [(e.event, e.data) for e in reference.events[1:]]
    assert rest.events[0].id == f"{stream_id}:{sequence_of(first.events[-1]) + 1}"

    answer = final_answer(a.url, conversation_id)
    assert (answer["status"], answer["finish_reason"], answer["content"]) == ("complete", "stop", VARIED.text)
    assert upstream.requests_for(model)[-1].outcome == "completed"
    # And from the start, through either instance: the same events again.
    for server in pair:
        assert wire(follow_stream(server.url, stream_id, after=0).events) == wire(joined)


def replayable_everywhere(servers: Sequence[GunicornServer], stream_id: str) -> None:
    """Until every instance replays an ended answer (see the race pinned below)."""
    assert wait_until(lambda: all(follow_stream(s.url, stream_id).status == 200 for s in servers), 2)


def test_the_position_is_last_event_id_or_after_and_the_header_wins(pair, upstream):
    a, _ = pair
    model = upstream.model(Behaviour(tokens=tuple(f" t{i}" for i in range(12))))
    whole = send(a.url, new_conversation(a.url, model))
    stream_id = stream_id_of(whole)
    replayable_everywhere(pair, stream_id)
    for server in pair:
        for position in (0, 1, 5, len(whole.events) - 1, len(whole.events)):
            expected = wire(whole.events[position:])
            assert wire(follow_stream(server.url, stream_id, after=position).events) == expected
            assert wire(follow_stream(server.url, stream_id, last_event_id=str(position)).events) == expected
            by_id = follow_stream(server.url, stream_id, last_event_id=f"{stream_id}:{position}", after=2)
            assert wire(by_id.events) == expected


def test_an_answer_that_just_ended_is_replayed_through_the_other_instance(pair, upstream):
    """As a tab reloaded at the end of a short answer would: five tries, each must replay."""
    a, b = pair
    model = upstream.model(Behaviour(tokens=("quick",)))
    for _ in range(5):
        whole = send(a.url, new_conversation(a.url, model))
        replayed = follow_stream(b.url, stream_id_of(whole), after=0)
        assert replayed.status == 200, replayed.body
        assert wire(replayed.events) == wire(whole.events)


def test_two_readers_at_once_get_the_identical_whole_answer(pair, upstream):
    """Two tabs follow one answer, through one instance and the other, while it streams."""
    a, b = pair
    model = upstream.model(VARIED)
    conversation_id = new_conversation(a.url, model)
    first = Background(functools.partial(send, a.url, conversation_id))
    first.wait_for_tokens(1)
    tabs = [
        Background(functools.partial(follow_stream, a.url, first.stream_id, after=0)),
        Background(functools.partial(follow_stream, b.url, first.stream_id, last_event_id="0")),
    ]
    for tab in tabs:
        tab.wait_for_tokens(1)
    assert first.tokens() < len(VARIED.tokens), "the answer ended before the tabs joined it"

    whole = first.result()
    assert_one_gapless_answer(whole.events, first.stream_id, VARIED.text, "stop")
    for tab in tabs:
        assert wire(tab.result().events) == wire(whole.events)
    assert final_answer(a.url, conversation_id)["content"] == VARIED.text


@pytest.mark.parametrize("position", ["abc", "-1", "1.5", " ", "{other}:3", "{stream}:x"])
def test_a_position_that_is_not_an_event_id_of_this_stream_is_400(pair, upstream, position):
    a, _ = pair
    model = upstream.model(Behaviour(tokens=("ok",)))
    stream_id = stream_id_of(send(a.url, new_conversation(a.url, model)))
    other = stream_id_of(send(a.url, new_conversation(a.url, model)))
    position = position.format(stream=stream_id, other=other)
    for server in pair:
        for asked in (
            follow_stream(server.url, stream_id, last_event_id=position),
            follow_stream(server.url, stream_id, after=position.replace(" ", "%20")),
        ):
            assert (asked.status, asked.error_json()["error"]["code"]) == (400, "invalid_event_id")


def test_a_stateless_chat_stream_cannot_be_reattached(pair, upstream):
    a, _ = pair
    chat = Background(functools.partial(post_chat, a.url, ask(upstream.model(ENDLESS))))
    chat.wait_for_tokens(3)
    for server in pair:
        for stream_id in (chat.stream_id, "q3Zb2f0n8E6Hn1hVQ7bA2w"):
            refused = follow_stream(server.url, stream_id)
            assert (refused.status, refused.error_json()["error"]["code"]) == (404, "stream_not_found")
    assert stop(a.url, chat.stream_id)[0] == 202
    assert chat.result().done == {"finish_reason": "cancelled"}


# -- retention and unread answers -------------------------------------------------------------


@pytest.fixture(params=["redis", "no-redis"])
def short_lived(request: pytest.FixtureRequest) -> list[GunicornServer]:
    """Instances that keep an ended answer for 1 s: two sharing Redis, or one alone."""
    if request.param == "redis":
        return list(request.getfixturevalue("short_lived_pair"))
    return [request.getfixturevalue("alone")]


def test_an_ended_answer_is_replayed_for_the_retention_then_it_is_404(short_lived, upstream):
    runs_on = short_lived[0]
    model = upstream.model(Behaviour(tokens=("kept", " a", " moment")))
    whole = send(runs_on.url, new_conversation(runs_on.url, model))
    ended_at = whole.closed_at
    stream_id = stream_id_of(whole)
    replayable_everywhere(short_lived, stream_id)
    for server in short_lived:
        assert wire(follow_stream(server.url, stream_id, after=0).events) == wire(whole.events)
    assert time.monotonic() - ended_at < 0.9, "too slow to check the replay within the retention"

    for server in short_lived:

        def forgotten(server: GunicornServer = server) -> bool:
            return follow_stream(server.url, stream_id, after=0).status == 404

        assert wait_until(forgotten, 4)
        gone = follow_stream(server.url, stream_id, last_event_id="2")
        assert (gone.status, gone.error_json()["error"]["code"]) == (404, "stream_not_found")
    assert time.monotonic() - ended_at > 1.0


def test_an_answer_nobody_reads_is_ended_after_the_detached_limit(short_lived, upstream):
    runs_on = short_lived[0]
    model = upstream.model(ENDLESS)
    conversation_id = new_conversation(runs_on.url, model)
    first = send(runs_on.url, conversation_id, stop_when=tokens_at_least(5))
    assert first.hung_up_at is not None

    record = upstream.wait_for_request(model)
    assert record.ended.wait(5), "the unread answer still runs"
    assert record.outcome == "client_closed"
    # CHATAPP_DETACHED_MAX_S=1, looked at every second.
    assert 0.9 < record.ended_at - first.hung_up_at < 3.0, record.ended_at - first.hung_up_at
    answer = final_answer(runs_on.url, conversation_id)
    assert (answer["status"], answer["finish_reason"]) == ("interrupted", "cancelled")
    assert answer["content"].startswith(first.text)
    assert len(answer["content"]) > len(first.text)


def test_an_answer_being_read_is_not_ended_by_the_detached_limit(short_lived, upstream):
    """Read by its first connection; or, with Redis, by a reader on the other instance only."""
    runs_on, reads_on = short_lived[0], short_lived[-1]
    model = upstream.model(THREE_S)
    if reads_on is runs_on:
        whole = reference_run(runs_on, model)
        assert whole.text == THREE_S.text
        return
    first, rest, conversation_id = drop_then_reattach(runs_on, reads_on, model)
    assert_one_gapless_answer(first.events + rest.events, stream_id_of(first), THREE_S.text, "stop")
    assert final_answer(runs_on.url, conversation_id)["status"] == "complete"


# -- without Redis: one worker -------------------------------------------------------------------


def test_several_workers_without_redis_refuse_to_start_naming_chatapp_redis_url(upstream):
    server = GunicornServer(upstream_env(upstream), workers=2)
    with pytest.raises(StartupError) as refused:
        server.start(timeout=20)
    assert "CHATAPP_REDIS_URL" in str(refused.value)


def test_without_redis_one_worker_runs_and_a_dropped_answer_finishes_and_is_reattached(alone, upstream):
    assert len(alone.worker_pids()) == 1
    model = upstream.model(VARIED)
    first, rest, conversation_id = drop_then_reattach(alone, alone, model)
    assert_one_gapless_answer(first.events + rest.events, stream_id_of(first), VARIED.text, "stop")
    answer = final_answer(alone.url, conversation_id)
    assert (answer["status"], answer["content"]) == ("complete", VARIED.text)
    assert "Traceback" not in alone.output()


# -- four workers sharing Redis -----------------------------------------------------------------

ACCESS_LINE = re.compile(r"^<(?P<pid>\d+)> (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3})$", re.MULTILINE)


@pytest.fixture(scope="module")
def four_workers(machines: Machines, redis: RedisServer) -> GunicornServer:
    """One instance with four workers, logging which worker answered each request."""
    args = ["-c", "gunicorn.conf.py", "--access-logformat", "%(p)s %(m)s %(U)s %(s)s", "wsgi:app"]
    (server,) = machines.start(1, redis=redis, workers=4, args=args, GUNICORN_ACCESSLOG="-")
    return server


def served_by(server: GunicornServer, method: str, path: str) -> int:
    """The pid of the worker that answered `method path` (its access log line)."""
    found: list[int] = []

    def logged() -> bool:
        found[:] = [
            int(m["pid"])
            for m in ACCESS_LINE.finditer(server.output())
            if (m["method"], m["path"]) == (method, path)
        ]
        return bool(found)

    assert wait_until(logged, 5), f"no access log line for {method} {path}"
    return found[-1]


def test_with_four_workers_reattach_and_stop_work_whichever_worker_answers(four_workers, upstream):
    """Each answer is reattached and then stopped by new connections, which land on any worker:
    the one that runs the answer or, through Redis, another."""
    server = four_workers
    crossed = {"reattach": 0, "stop": 0}
    for _ in range(12):
        model = upstream.model(ENDLESS)
        conversation_id = new_conversation(server.url, model)
        first = send(server.url, conversation_id, stop_when=tokens_at_least(3))
        stream_id = stream_id_of(first)
        rest = Background(
            functools.partial(follow_stream, server.url, stream_id, last_event_id=first.events[-1].id)
        )
        rest.wait_for_tokens(3)
        asked_at = time.monotonic()
        assert stop(server.url, stream_id) == (202, {"stopped": True})
        assert_upstream_closed_soon(upstream, model, asked_at, within_s=1.0)
        joined = first.events + rest.result().events
        text = "".join(e.json()["text"] for e in joined if e.event == "token")
        assert ENDLESS.text.startswith(text)
        assert_one_gapless_answer(joined, stream_id, text, "cancelled")
        assert final_answer(server.url, conversation_id)["content"] == text

        runner = served_by(server, "POST", f"/api/conversations/{conversation_id}/messages")
        crossed["reattach"] += served_by(server, "GET", f"/api/streams/{stream_id}") != runner
        crossed["stop"] += served_by(server, "POST", f"/api/chat/{stream_id}/stop") != runner
    print(f"of 12 answers on four workers, {crossed} were reattached / stopped through another worker")
    assert crossed["reattach"] >= 1
    assert crossed["stop"] >= 1
    assert "Traceback" not in server.output()


# -- through nginx, over HTTP/2 and TLS ------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx(pair: tuple[GunicornServer, GunicornServer]) -> Iterator[NginxServer]:
    with NginxServer([server.port for server in pair]) as server:
        yield server


@pytest.fixture
def client(nginx: NginxServer) -> Iterator[httpx2.Client]:
    """An HTTP/2 client that trusts nginx's throwaway CA, asking for gzip as browsers do."""
    context = nginx.certificate.client_context()
    headers = {"Accept-Encoding": "gzip"}
    with httpx2.Client(http2=True, verify=context, base_url=nginx.url, timeout=10, headers=headers) as c:
        yield c


def messages_path(client: httpx2.Client, model: str) -> str:
    created = client.post("/api/conversations", json={"model": model})
    assert created.status_code == 201
    return f"/api/conversations/{created.json()['id']}/messages"


def test_through_nginx_an_answer_streams_over_http2_never_compressed(client, upstream):
    behaviour = Behaviour(tokens=tuple(f" t{i}" for i in range(10)), token_interval_s=0.1)
    model = upstream.model(behaviour)
    with client.stream("POST", messages_path(client, model), json={"content": "go"}) as response:
        assert (response.status_code, response.http_version) == (200, "HTTP/2")
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        events = read_events(response)
    tokens = [e for e in events if e.event == "token"]
    assert "".join(e.json()["text"] for e in tokens) == behaviour.text
    assert events[-1].json() == {"finish_reason": "stop"}
    # Ten tokens 0.1 s apart: buffered, they would all arrive at once.
    assert tokens[-1].at - tokens[0].at > 0.5


def test_through_nginx_a_stop_reaches_the_instance_running_the_answer_within_a_second(client, upstream):
    """nginx sends requests to the two instances in turn: some stops reach the other one. A second
    tells a stop taken from one that waits for the answer's end; how soon is bench.resumable's."""
    for _ in range(4):
        model = upstream.model(ENDLESS)
        decoder = SseDecoder()
        events: list[SseEvent] = []
        with client.stream("POST", messages_path(client, model), json={"content": "go"}) as response:
            chunks = response.iter_raw()
            for chunk in chunks:
                events.extend(decoder.feed(chunk))
                if sum(e.event == "token" for e in events) >= 3:
                    break
            asked_at = time.monotonic()
            stopped = client.post(f"/api/chat/{events[0].json()['stream_id']}/stop", json={})
            assert (stopped.status_code, stopped.json()) == (202, {"stopped": True})
            assert_upstream_closed_soon(upstream, model, asked_at, within_s=1.0)
            for chunk in chunks:
                events.extend(decoder.feed(chunk))
        assert events[-1].json() == {"finish_reason": "cancelled"}


def test_through_nginx_a_dropped_answer_is_reattached_with_the_exact_rest(nginx, client, upstream):
    model = upstream.model(VARIED)
    path = messages_path(client, model)
    h2 = H2Client("127.0.0.1", nginx.https_port, nginx.certificate.client_context())
    try:
        request = h2.request(
            "POST", path, json.dumps({"content": "go"}).encode(), {"Content-Type": "application/json"}
        )
        received = h2.read_until(request, lambda body: body.count(b"event: token") >= 10)
    finally:
        h2.close()  # a lost network: the connection goes without a goodbye
    first = list(SseDecoder().feed(received))
    stream_id = first[0].json()["stream_id"]
    with client.stream(
        "GET", f"/api/streams/{stream_id}", headers={"Last-Event-ID": first[-1].id}
    ) as response:
        assert (response.status_code, response.http_version) == (200, "HTTP/2")
        assert "content-encoding" not in response.headers
        rest = read_events(response)
    assert_one_gapless_answer(first + rest, stream_id, VARIED.text, "stop")
