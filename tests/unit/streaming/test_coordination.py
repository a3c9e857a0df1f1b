"""What the worker processes share (chatapp/streaming/coordination/): nothing with `LocalCoordinator`
(one process is the whole truth); with `RedisCoordinator`, against a real redis-server, which streams
run (a key per stream), stopping one from any process (pub/sub), and a per-client cap that every
process counts together. Redis going away degrades to this process; it never raises from the calls
every stream makes."""

from __future__ import annotations

import atexit
import logging
import threading
import uuid
from collections.abc import Iterator

import pytest
from redis import Redis

from chatapp.config import Settings
from chatapp.streaming.admission import ClientBusy
from chatapp.streaming.answer_log import AnswerLog
from chatapp.streaming.coordination import (
    LocalCoordinator,
    SharedStateUnavailable,
    make_coordinator,
    redis_coordinator,
)
from chatapp.streaming.coordination.redis_coordinator import ENDED_KEY_S, LEASE_S, RedisCoordinator
from chatapp.streaming.coordination.redis_schema import STOP_CHANNEL, running_key
from harness.redis import RedisServer
from tests.support.waiting import wait_until


def new_id() -> str:
    return uuid.uuid4().hex


def coordinator(url: str, max_per_client: int = 0) -> RedisCoordinator:
    return RedisCoordinator(url, retention_s=5, max_stream_s=60, max_per_client=max_per_client, heartbeat_s=1)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A redis-server of this module's own: its tests count clients in it."""
    with RedisServer() as started:
        yield started


@pytest.fixture
def peek(server: RedisServer) -> Iterator[Redis]:
    """A plain client, to look at what the coordinators wrote."""
    with Redis.from_url(server.uri, protocol=2) as client:
        yield client


@pytest.fixture(scope="session")
def listened() -> RedisServer:
    """A redis-server for coordinators that listen for stops, stopped when this process exits.

    A coordinator cannot be closed: its listener reconnects for as long as the process lives, and
    complains in the log each time it finds the server gone. So the server it listens to must
    outlive the session, not only this module."""
    server = RedisServer().start()
    atexit.register(server.stop)
    # Run first (last in, first out): the listeners' complaints that it went away are no news then.
    atexit.register(logging.getLogger(redis_coordinator.__name__).setLevel, logging.CRITICAL)
    return server


class Stops:
    """A process's `on_stop`: records the stops it hears, and takes those of the streams it runs."""

    def __init__(self, runs: set[str]) -> None:
        self.runs = runs
        self.heard: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, stream_id: str) -> bool:
        with self.lock:
            self.heard.append(stream_id)
        return stream_id in self.runs


# -- one process ------------------------------------------------------------------------


def test_one_process_shares_nothing() -> None:
    local = LocalCoordinator()

    for release in [local.admit("10.0.0.1") for _ in range(100)]:
        release()

    assert local.stop_elsewhere("any") is False
    assert local.follow("any", 0, heartbeat_s=1) is None
    assert local.read_elsewhere("any") is False


def test_make_coordinator_shares_through_redis_only_when_it_is_configured(server: RedisServer) -> None:
    with_redis = Settings.from_env({"CHATAPP_REDIS_URL": server.uri})

    assert isinstance(make_coordinator(Settings.from_env({})), LocalCoordinator)
    assert isinstance(make_coordinator(with_redis), RedisCoordinator)


# -- several processes through Redis ---------------------------------------------------


def test_a_running_stream_has_a_leased_key_until_it_finished(server: RedisServer, peek: Redis) -> None:
    shared, stream_id = coordinator(server.uri), new_id()

    shared.running(stream_id)
    assert peek.get(running_key(stream_id)) == b"s"
    assert 0 < peek.ttl(running_key(stream_id)) <= LEASE_S
    shared.finished(stream_id)

    assert peek.exists(running_key(stream_id)) == 0


def test_a_resumable_answer_is_marked_so_and_says_it_ended(server: RedisServer, peek: Redis) -> None:
    """A reader elsewhere that finds `e` waits for the log's last entry (one flush away) instead of
    being told there is no such answer."""
    shared, stream_id = coordinator(server.uri), new_id()
    shared.mirror(AnswerLog(stream_id))  # before the stream starts, as AnswerJobs.start does

    shared.running(stream_id)
    assert peek.get(running_key(stream_id)) == b"r"
    shared.finished(stream_id)

    assert peek.get(running_key(stream_id)) == b"e"
    assert 0 < peek.ttl(running_key(stream_id)) <= ENDED_KEY_S


def test_stop_elsewhere_reaches_the_process_that_runs_the_stream(listened: RedisServer) -> None:
    stream_id = new_id()
    runner, asker = coordinator(listened.uri), coordinator(listened.uri)
    runner_stops, asker_stops = Stops(runs={stream_id}), Stops(runs=set())
    runner.listen(runner_stops)
    asker.listen(asker_stops)
    runner.running(stream_id)

    assert asker.stop_elsewhere(stream_id) is True

    assert stream_id in runner_stops.heard, "stop_elsewhere returned before the runner took the stop"
    with Redis.from_url(listened.uri, protocol=2) as peek:
        assert peek.get(running_key(stream_id)) == b"xs"  # taken: a second stop is not sent again
    assert wait_until(lambda: stream_id in asker_stops.heard)  # every process hears it; one runs it
    runner.finished(stream_id)


def test_the_stop_listener_outlives_a_message_it_cannot_act_on(listened: RedisServer) -> None:
    """Regression: the listener caught only RedisError, so an `on_stop` that raised, or a message
    that was not UTF-8, ended it for good, and this process never heard a stop again."""
    stream_id = new_id()
    runner, asker = coordinator(listened.uri), coordinator(listened.uri)
    runs = Stops(runs={stream_id})

    def on_stop(heard: str) -> bool:
        if heard == "boom":
            raise RuntimeError("a bug in on_stop")
        return runs(heard)

    runner.listen(on_stop)
    runner.running(stream_id)
    with Redis.from_url(listened.uri, protocol=2) as peek:
        peek.publish(STOP_CHANNEL, b"\xff\xfe not utf-8")
        peek.publish(STOP_CHANNEL, "boom")

    assert asker.stop_elsewhere(stream_id) is True
    assert stream_id in runs.heard
    runner.finished(stream_id)


def test_stop_elsewhere_of_a_stream_that_runs_nowhere_is_false(listened: RedisServer) -> None:
    listener, asker = coordinator(listened.uri), coordinator(listened.uri)
    heard = Stops(runs=set())
    listener.listen(heard)

    assert asker.stop_elsewhere(new_id()) is False
    assert heard.heard == []


def test_the_per_client_cap_is_counted_across_processes(server: RedisServer) -> None:
    one, two = coordinator(server.uri, max_per_client=2), coordinator(server.uri, max_per_client=2)
    client = new_id()
    first = one.admit(client)
    second = two.admit(client)

    with pytest.raises(ClientBusy):
        one.admit(client)
    with pytest.raises(ClientBusy):
        two.admit(client)
    other_client = two.admit(new_id())
    first()
    first()  # a second call gives back nothing more

    third = two.admit(client)
    with pytest.raises(ClientBusy):
        one.admit(client)
    for release in (second, third, other_client):
        release()


def test_no_per_client_cap_admits_every_stream(server: RedisServer) -> None:
    shared, client = coordinator(server.uri, max_per_client=0), new_id()

    releases = [shared.admit(client) for _ in range(50)]

    for release in releases:
        release()


def test_read_elsewhere_is_true_while_a_reader_in_another_process_announces_itself(
    server: RedisServer, peek: Redis
) -> None:
    shared, stream_id = coordinator(server.uri), new_id()
    assert shared.read_elsewhere(stream_id) is False

    peek.set(f"chatapp:reading:{stream_id}", 1, ex=5)  # what RedisFollow announces once per heartbeat

    assert shared.read_elsewhere(stream_id) is True


def test_with_redis_gone_streams_go_on_and_only_what_needs_another_process_fails() -> None:
    with RedisServer() as gone:
        shared = coordinator(gone.uri, max_per_client=1)
    stream_id, client = new_id(), new_id()

    shared.running(stream_id)  # none of these raises: the stream goes on
    release = shared.admit(client)
    shared.admit(client)  # this process's own cap (admission.py) is what is left
    release()
    shared.finished(stream_id)

    assert shared.read_elsewhere(stream_id) is True  # in doubt, an unread answer is kept going
    with pytest.raises(SharedStateUnavailable):
        shared.stop_elsewhere(stream_id)
    with pytest.raises(SharedStateUnavailable):
        shared.follow(stream_id, 0, heartbeat_s=1)
