"""The registry of live streams and its sweeper (chatapp/streaming/registry.py): cancel by id, tell
the announcer what starts and ends, cut a client (or a reader) that has taken no byte for the write
timeout, wake a relay whose read is due otherwise, and drain at shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from chatapp.streaming.registry import Cause, LiveStream, Reader, StreamRegistry
from tests.support.waiting import wait_until

WRITE_TIMEOUT_S = 1.0
# The sweeper looks every tick; short, so that a test sees several sweeps at once.
TICK_S = 0.02


class FakeStream:
    """A live stream whose write has been stalled for `stalled_s`, recording what is done to it."""

    def __init__(self, stream_id: str, stalled_s: float = 0.0) -> None:
        self.stream_id = stream_id
        self.stalled_s = stalled_s
        self.looked_at = 0
        self.hung_up = threading.Event()
        self.wakes = 0
        self.cancelled: list[Cause] = []

    def cancel(self, cause: Cause) -> None:
        self.cancelled.append(cause)

    def write_stalled_s(self, now: float) -> float:
        self.looked_at += 1
        return self.stalled_s

    def hang_up(self) -> None:
        self.hung_up.set()

    def wake_if_due(self, now: float) -> None:
        self.wakes += 1


class FinishingStream(FakeStream):
    """A stream that ends (leaves the registry) once the sweeper has looked at it `after_looks` times."""

    def __init__(self, stream_id: str, registry: StreamRegistry, after_looks: int) -> None:
        super().__init__(stream_id)
        self._registry = registry
        self._after_looks = after_looks

    def write_stalled_s(self, now: float) -> float:
        stalled = super().write_stalled_s(now)
        if self.looked_at == self._after_looks:
            self._registry.remove(self)
        return stalled


class FakeReader:
    """A reattached reader whose write has been stalled for `stalled_s`."""

    def __init__(self, stalled_s: float) -> None:
        self.stalled_s = stalled_s
        self.looked_at = 0
        self.hung_up = threading.Event()

    def write_stalled_s(self, now: float) -> float:
        self.looked_at += 1
        return self.stalled_s

    def hang_up(self) -> None:
        self.hung_up.set()


class Announcements:
    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def running(self, stream_id: str) -> None:
        self.said.append(("running", stream_id))

    def finished(self, stream_id: str) -> None:
        self.said.append(("finished", stream_id))


class TrackedRegistry(StreamRegistry):
    """The registry, remembering what a test put in it, so that the test can take it all out: a
    sweeper runs as long as its process (it has no stop), and must not go on sweeping a test's
    stalled streams, and logging so, through the tests that follow."""

    def __init__(self) -> None:
        super().__init__(write_timeout_s=WRITE_TIMEOUT_S, tick_s=TICK_S)
        self.added: list[FakeStream] = []
        self.readers_added: list[FakeReader] = []

    def add(self, stream: LiveStream) -> None:
        assert isinstance(stream, FakeStream)
        self.added.append(stream)
        super().add(stream)

    def add_reader(self, reader: Reader) -> None:
        assert isinstance(reader, FakeReader)
        self.readers_added.append(reader)
        super().add_reader(reader)

    def take_all_out(self) -> None:
        for stream in self.added:
            self.remove(stream)
        for reader in self.readers_added:
            self.remove_reader(reader)


@pytest.fixture
def registry() -> Iterator[StreamRegistry]:
    registry = TrackedRegistry()
    yield registry
    registry.take_all_out()


def test_a_stream_stalled_past_the_write_timeout_is_hung_up(registry: StreamRegistry) -> None:
    stalled = FakeStream("stalled", stalled_s=WRITE_TIMEOUT_S + 0.5)
    registry.add(stalled)

    assert stalled.hung_up.wait(5)
    assert stalled.cancelled == [], "the sweeper hangs up; cancelling is the stream's own business"


def test_a_stream_under_the_write_timeout_is_not_hung_up_but_woken_when_due(registry: StreamRegistry) -> None:
    slow = FakeStream("slow", stalled_s=WRITE_TIMEOUT_S - 0.5)
    registry.add(slow)

    assert wait_until(lambda: slow.wakes >= 3), "the sweeper never asked the stream to wake its read"
    assert not slow.hung_up.is_set()


def test_a_reader_stalled_past_the_write_timeout_is_hung_up_and_one_under_it_is_not(
    registry: StreamRegistry,
) -> None:
    stalled, slow = FakeReader(WRITE_TIMEOUT_S + 0.5), FakeReader(WRITE_TIMEOUT_S - 0.5)
    registry.add_reader(stalled)
    registry.add_reader(slow)

    assert stalled.hung_up.wait(5)
    assert wait_until(lambda: slow.looked_at >= 3)
    assert not slow.hung_up.is_set()


def test_a_reader_that_left_is_no_longer_swept(registry: StreamRegistry) -> None:
    gone, staying = FakeReader(0.0), FakeReader(0.0)
    registry.add_reader(gone)
    registry.add_reader(staying)

    registry.remove_reader(gone)
    looked_at = gone.looked_at

    assert wait_until(lambda: staying.looked_at >= 3)
    assert gone.looked_at <= looked_at + 1  # at most the sweep that was under way


def test_cancel_reaches_the_stream_by_id_and_an_unknown_id_is_false(registry: StreamRegistry) -> None:
    stream = FakeStream("known")
    registry.add(stream)

    assert registry.cancel("unknown") is False
    assert registry.cancel("known") is True
    assert registry.cancel("known", Cause.SHUTDOWN) is True
    assert stream.cancelled == [Cause.STOPPED, Cause.SHUTDOWN]


def test_the_announcer_is_told_when_a_stream_runs_and_when_it_finished(registry: StreamRegistry) -> None:
    announcer = registry.announcer = Announcements()
    stream = FakeStream("told")

    registry.add(stream)
    assert registry.is_running("told")
    registry.remove(stream)

    assert announcer.said == [("running", "told"), ("finished", "told")]
    assert not registry.is_running("told")


def test_removing_a_stream_that_another_replaced_under_its_id_leaves_the_new_one(
    registry: StreamRegistry,
) -> None:
    announcer = registry.announcer = Announcements()
    old, new = FakeStream("same"), FakeStream("same")
    registry.add(old)
    registry.add(new)

    registry.remove(old)

    assert registry.is_running("same")
    assert ("finished", "same") not in announcer.said


def test_drain_waits_for_running_streams_to_finish_and_cancels_none(registry: StreamRegistry) -> None:
    finishing = FinishingStream("finishing", registry, after_looks=3)
    registry.add(finishing)

    cancelled = registry.drain(deadline=time.monotonic() + 30)

    assert cancelled == 0
    assert finishing.cancelled == []
    assert finishing.looked_at >= 3, "drain returned before the stream finished"


def test_drain_cancels_what_is_left_at_the_deadline_as_shutdown(registry: StreamRegistry) -> None:
    streams = [FakeStream("one"), FakeStream("two")]
    for stream in streams:
        registry.add(stream)

    cancelled = registry.drain(deadline=time.monotonic() + 0.05)

    assert cancelled == 2
    assert [s.cancelled for s in streams] == [[Cause.SHUTDOWN], [Cause.SHUTDOWN]]


def test_drain_with_nothing_running_returns_at_once_with_none_cancelled(registry: StreamRegistry) -> None:
    assert registry.drain(deadline=time.monotonic() + 30) == 0
