"""Resumable answers (chatapp/streaming/resumable.py): a stored conversation's answer runs to its end
whatever happens to the connection that asked for it, and every frame it writes is kept in its
`AnswerLog` for any reader to follow.

A real `Relay` over a model stream the test feeds, a real registry and `LocalCoordinator`."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import cast

import pytest

from chatapp.llm.base import BackendEvent, Finish, StopReason, TextDelta
from chatapp.streaming import resumable
from chatapp.streaming.answer_log import KEEP_ALIVE, AnswerLog
from chatapp.streaming.coordination import LocalCoordinator
from chatapp.streaming.registry import Cause, StreamRegistry
from chatapp.streaming.relay import Relay, RelayLimits
from chatapp.streaming.resumable import AnswerJob, AnswerJobs, FollowReader
from chatapp.streaming.stream_end import StreamEnd
from tests.support.sse_client import SseDecoder, SseEvent
from tests.support.waiting import wait_until

# Longer than any test: no keep-alive unless a test asks for one.
QUIET = RelayLimits(heartbeat_s=60.0)
# How often the jobs' ticker looks for ended logs and unread answers here (1 s in production).
TICK_S = 0.01


class FedStream:
    """A model stream that says what the test `send`s, one read per call, and is silent meanwhile."""

    model = "fed"
    served_model = None

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._events: list[BackendEvent] = []
        self.closed = threading.Event()

    def send(self, *events: BackendEvent) -> None:
        with self._ready:
            self._events.extend(events)
            self._ready.notify_all()

    def open(self) -> None:
        pass

    def read(self, timeout: float | None) -> list[BackendEvent]:
        with self._ready:
            self._ready.wait_for(lambda: self._events or self.closed.is_set(), timeout)
            events, self._events = self._events, []
        return [] if self.closed.is_set() else events

    def close(self) -> None:
        self.closed.set()
        with self._ready:
            self._ready.notify_all()


class Ends:
    """A relay observer that keeps how its stream ended, and which thread relayed each read."""

    def __init__(self) -> None:
        self.causes: list[Cause | None] = []
        self.read_in: list[str] = []

    def began(self) -> None:
        pass

    def seen(self, events: list[BackendEvent]) -> None:
        self.read_in.append(threading.current_thread().name)

    def ended(self, end: StreamEnd) -> None:
        self.causes.append(end.cause)


class Releases:
    """An admission's release that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


class Answer:
    """One resumable answer as the views start one: its model stream, relay, job and release; and
    the response bodies the test opened on it."""

    def __init__(
        self, jobs: AnswerJobs, registry: StreamRegistry, first_client: socket.socket | None = None
    ) -> None:
        self.model = FedStream()
        self.ends = Ends()
        self.relay = Relay(self.model, QUIET, registry=registry, observer=self.ends)
        self.release = Releases()
        self.job: AnswerJob = jobs.start(self.relay, self.release, first_client)
        self._bodies: list[Generator[bytes, None, None]] = []

    @property
    def log(self) -> AnswerLog:
        return self.job.log

    @property
    def stream_id(self) -> str:
        return self.relay.stream_id

    def first_reader(self) -> Generator[bytes, None, None]:
        return self._opened(self.job.first_reader())

    def follow_reader(
        self, registry: StreamRegistry, sock: socket.socket | None
    ) -> Generator[bytes, None, None]:
        return self._opened(FollowReader(self.log.follow(0, heartbeat_s=60), registry, sock).body())

    def _opened(self, body: Iterator[bytes]) -> Generator[bytes, None, None]:
        generator = cast("Generator[bytes, None, None]", body)  # the views' bodies are generators
        self._bodies.append(generator)
        return generator

    def logged(self) -> bytes:
        return b"".join(chunk.data for chunk in self.log.chunks)

    def logged_events(self) -> list[SseEvent]:
        return events_of(self.logged())

    def end(self) -> None:
        """Whatever a test left of it: bodies closed, the relay cancelled and run to its end (a
        suspended body finalized at exit would wait forever for a thread that no longer runs)."""
        for body in self._bodies:
            body.close()
        self.job.cancel(Cause.SHUTDOWN)
        self.job.response_closed()
        assert wait_until(lambda: self.log.ended), f"answer {self.stream_id} never ended"


StartAnswer = Callable[..., Answer]


def events_of(data: bytes) -> list[SseEvent]:
    return list(SseDecoder().feed(data))


def names(events: list[SseEvent]) -> list[str]:
    return [e.event for e in events]


def finish_of(events: list[SseEvent]) -> str:
    done = events[-1]
    assert done.event == "done", names(events)
    reason: str = done.json()["finish_reason"]
    return reason


@pytest.fixture(autouse=True)
def fast_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resumable, "TICK_S", TICK_S)


@pytest.fixture
def registry() -> StreamRegistry:
    return StreamRegistry(write_timeout_s=30)


@pytest.fixture
def jobs(registry: StreamRegistry) -> AnswerJobs:
    return AnswerJobs(registry, LocalCoordinator(), retention_s=60, unread_max_s=0)


@pytest.fixture
def start(jobs: AnswerJobs, registry: StreamRegistry) -> Iterator[StartAnswer]:
    """`start(first_client=None, on=(jobs, registry))`: a new answer; all ended after the test."""
    started: list[Answer] = []

    def start_answer(
        first_client: socket.socket | None = None, on: tuple[AnswerJobs, StreamRegistry] | None = None
    ) -> Answer:
        answer = Answer(*(on or (jobs, registry)), first_client)
        started.append(answer)
        return answer

    yield start_answer
    for answer in started:
        answer.end()


def test_the_first_reader_gets_the_relays_frames_and_the_log_keeps_each_of_them(
    start: StartAnswer, jobs: AnswerJobs
) -> None:
    answer = start()
    answer.model.send(TextDelta("Hel"), TextDelta("lo"), Finish(StopReason.STOP))

    frames = list(answer.first_reader())

    assert names(events_of(b"".join(frames))) == ["start", "token", "token", "done"]
    # The same frames, but the relay's keep-alive: it is for the first client's socket only.
    assert answer.logged() == b"".join(frames).replace(KEEP_ALIVE, b"")
    assert answer.log.last == answer.relay.sequence == 4
    assert answer.log.ended
    assert jobs.log_for(answer.stream_id) is answer.log


def test_when_the_first_reader_leaves_the_answer_goes_on_to_done_in_its_own_thread(
    start: StartAnswer,
) -> None:
    answer = start()
    body = answer.first_reader()
    next(body)  # start
    answer.model.send(TextDelta("Hel"))
    next(body)

    body.close()  # what the server does when the client is gone
    answer.model.send(TextDelta("lo"), Finish(StopReason.STOP))

    assert wait_until(lambda: answer.log.ended), "the answer stopped with its first reader"
    events = answer.logged_events()
    assert names(events) == ["start", "token", "token", "done"]
    assert "".join(e.json()["text"] for e in events if e.event == "token") == "Hello"
    assert finish_of(events) == "stop"
    assert answer.ends.causes == [None]
    assert answer.ends.read_in == [threading.current_thread().name, f"answer-{answer.stream_id}"]


def test_a_response_closed_before_its_body_ran_runs_the_answer_alone(start: StartAnswer) -> None:
    answer = start()

    answer.job.response_closed()
    answer.model.send(TextDelta("alone"), Finish(StopReason.STOP))

    assert wait_until(lambda: answer.log.ended)
    assert names(answer.logged_events()) == ["start", "token", "done"]
    assert answer.release.calls == 1


def test_the_admission_is_released_once_at_the_end_not_when_the_first_reader_leaves(
    start: StartAnswer,
) -> None:
    """A client whose page closed while its answer runs still holds that stream: releasing it when
    the first reader left would let one client run more answers than its cap at once."""
    answer = start()
    body = answer.first_reader()
    next(body)
    body.close()

    assert answer.release.calls == 0
    answer.model.send(Finish(StopReason.STOP))
    assert wait_until(lambda: answer.release.calls > 0)
    answer.job.detach()
    answer.job.response_closed()
    assert answer.release.calls == 1


def test_the_registry_holds_the_answer_while_it_runs(start: StartAnswer, registry: StreamRegistry) -> None:
    answer = start()
    body = answer.first_reader()

    next(body)
    assert registry.is_running(answer.stream_id)
    answer.model.send(Finish(StopReason.STOP))
    list(body)

    assert not registry.is_running(answer.stream_id)


def test_the_sweeper_cuts_a_first_client_that_stopped_reading_but_not_its_answer(start: StartAnswer) -> None:
    """The registry holds the job, not its relay: hanging up on a client that stopped reading must
    cut that client only. Were it the relay's `hang_up`, the answer would end `cancelled`."""
    registry = StreamRegistry(write_timeout_s=0.2, tick_s=0.01)
    jobs = AnswerJobs(registry, LocalCoordinator(), retention_s=60, unread_max_s=0)
    client, peer = socket.socketpair()  # a unix socket: a write is stalled from its start
    with client, peer:
        answer = start(client, on=(jobs, registry))
        body = answer.first_reader()
        next(body)  # the server writes it, and the client takes nothing

        peer.settimeout(5)
        assert peer.recv(1) == b"", "the first client was not hung up"
        body.close()  # its write failed: the server closes the body
        answer.model.send(TextDelta("still here"), Finish(StopReason.STOP))

        assert wait_until(lambda: answer.log.ended)
    assert finish_of(answer.logged_events()) == "stop"


def test_once_its_first_client_is_gone_the_answer_no_longer_counts_as_stalled(start: StartAnswer) -> None:
    """Regression: the first reader's write clock kept the time of the write its client never
    took, so after the answer went on alone the sweeper hung up on that socket, and logged it,
    at every tick until the answer ended."""
    client, peer = socket.socketpair()
    with client, peer:
        answer = start(client)
        body = answer.first_reader()
        next(body)  # handed to the server; the client takes nothing, and goes away
        assert answer.job.write_stalled_s(time.monotonic() + 60) >= 59

        body.close()

        assert answer.job.write_stalled_s(time.monotonic() + 60) == 0.0


def test_hang_up_without_a_first_client_leaves_the_answer_running(start: StartAnswer) -> None:
    answer = start()
    body = answer.first_reader()
    next(body)

    answer.job.hang_up()
    answer.model.send(Finish(StopReason.STOP))

    assert finish_of(events_of(b"".join(body))) == "stop"


def test_cancel_ends_a_running_answer_with_done_cancelled(
    start: StartAnswer, registry: StreamRegistry
) -> None:
    answer = start()
    answer.job.response_closed()
    assert wait_until(lambda: registry.is_running(answer.stream_id))

    assert registry.cancel(answer.stream_id) is True

    assert wait_until(lambda: answer.log.ended)
    assert finish_of(answer.logged_events()) == "cancelled"
    assert answer.model.closed.is_set()
    assert answer.ends.causes == [Cause.STOPPED]
    assert answer.release.calls == 1


def test_an_ended_answers_log_is_kept_for_the_retention_then_dropped(
    start: StartAnswer, jobs: AnswerJobs
) -> None:
    answer = start()
    answer.model.send(Finish(StopReason.STOP))
    list(answer.first_reader())
    assert answer.log.ended_at is not None

    answer.log.ended_at -= 59  # retention_s is 60
    assert jobs.log_for(answer.stream_id) is answer.log
    answer.log.ended_at -= 2

    assert jobs.log_for(answer.stream_id) is None
    assert wait_until(lambda: len(jobs) == 0), "the ended log was never dropped"


def test_only_ended_logs_are_dropped(start: StartAnswer, jobs: AnswerJobs) -> None:
    running = start()
    running.job.response_closed()
    ended = start()
    ended.model.send(Finish(StopReason.STOP))
    list(ended.first_reader())
    assert ended.log.ended_at is not None

    ended.log.ended_at -= 61  # past the retention: dropped at the next tick

    assert wait_until(lambda: len(jobs) == 1)
    assert jobs.log_for(running.stream_id) is running.log


@pytest.fixture
def unread_jobs(registry: StreamRegistry) -> AnswerJobs:
    return AnswerJobs(registry, LocalCoordinator(), retention_s=60, unread_max_s=0.1)


def test_an_answer_nobody_reads_past_unread_max_is_cancelled_as_unread(
    start: StartAnswer, unread_jobs: AnswerJobs, registry: StreamRegistry
) -> None:
    answer = start(on=(unread_jobs, registry))

    answer.job.response_closed()  # its first client left before reading anything

    assert wait_until(lambda: answer.log.ended), "an answer nobody reads ran on"
    assert answer.ends.causes == [Cause.UNREAD]
    assert finish_of(answer.logged_events()) == "cancelled"


def test_an_answer_being_read_is_not_cancelled_as_unread(
    start: StartAnswer, unread_jobs: AnswerJobs, registry: StreamRegistry
) -> None:
    answer = start(on=(unread_jobs, registry))
    body = answer.first_reader()
    next(body)  # its first client reads it, and takes its time

    assert not wait_until(lambda: answer.log.ended, timeout=0.5)
    answer.model.send(Finish(StopReason.STOP))
    assert finish_of(events_of(b"".join(body))) == "stop"


class ReadElsewhere(LocalCoordinator):
    def read_elsewhere(self, stream_id: str) -> bool:
        return True


def test_an_answer_read_in_another_process_is_not_cancelled_as_unread(
    start: StartAnswer, registry: StreamRegistry
) -> None:
    jobs = AnswerJobs(registry, ReadElsewhere(), retention_s=60, unread_max_s=0.1)
    answer = start(on=(jobs, registry))

    answer.job.response_closed()

    assert not wait_until(lambda: answer.log.ended, timeout=0.5)
    assert answer.ends.causes == []


def test_a_follow_reader_gets_the_log_to_its_end_then_leaves_it(
    start: StartAnswer, registry: StreamRegistry
) -> None:
    answer = start()
    answer.job.response_closed()
    body = answer.follow_reader(registry, sock=None)

    assert names(events_of(next(body))) == ["start"]
    assert answer.log.readers == 1
    answer.model.send(TextDelta("a"), Finish(StopReason.STOP))
    rest = b"".join(body)

    assert names(events_of(rest)) == ["token", "done"]
    assert answer.log.readers == 0


def test_a_follow_reader_that_stopped_reading_is_hung_up_by_the_sweeper(start: StartAnswer) -> None:
    registry = StreamRegistry(write_timeout_s=0.2, tick_s=0.01)
    jobs = AnswerJobs(registry, LocalCoordinator(), retention_s=60, unread_max_s=0)
    answer = start(on=(jobs, registry))
    answer.job.response_closed()
    sock, peer = socket.socketpair()
    with sock, peer:
        body = answer.follow_reader(registry, sock)
        next(body)  # written, and never taken

        peer.settimeout(5)
        assert peer.recv(1) == b"", "the reader was not hung up"
