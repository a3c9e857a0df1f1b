"""The relay: backend events in, contract-ordered SSE frames out, heartbeats while the model is silent."""

import threading
import time

import pytest

from chatapp.llm.base import (
    BackendEvent,
    FailureKind,
    Finish,
    ReasoningDelta,
    StopReason,
    TextDelta,
    UpstreamError,
    Usage,
)
from chatapp.streaming.registry import Cause, StreamRegistry
from chatapp.streaming.relay import Relay, RelayLimits
from tests.support.sse_client import SseDecoder
from tests.support.waiting import wait_until


class ScriptedStream:
    """A model stream that plays a script: events (those in a row arrive as one read), pauses
    (numbers, in seconds), or an exception to raise. Past its end it is silent."""

    model = "scripted"
    served_model = None

    def __init__(self, *script):
        self.script = list(script)
        self.closed = threading.Event()
        self.reads = 0
        self._pause_until: float | None = None

    def open(self):
        pass

    def read(self, timeout):
        self.reads += 1
        if not self.script or isinstance(self.script[0], float):
            if self.script and self._pause_until is None:
                self._pause_until = time.monotonic() + self.script[0]
            left = timeout
            if self.script:
                assert self._pause_until is not None  # set just above
                left = self._pause_until - time.monotonic()
            if self.closed.wait(min(left, timeout)) or not self.script:
                return []
            assert self._pause_until is not None  # the script goes on with this pause
            if time.monotonic() < self._pause_until:
                return []
            self.script.pop(0)
            self._pause_until = None
        events: list[BackendEvent] = []
        while self.script and not isinstance(self.script[0], float):
            step = self.script.pop(0)
            if isinstance(step, BaseException):
                if events:
                    self.script.insert(0, step)
                    break
                raise step
            events.append(step)
        return events

    def close(self):
        self.closed.set()


def relay_all(stream, heartbeat_s=10.0):
    return relay_all_with(stream, RelayLimits(heartbeat_s=heartbeat_s))


def relay_all_with(stream, limits):
    relay = Relay(stream, limits)
    decoder = SseDecoder()
    chunks = list(relay.frames())
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return relay, chunks, events, decoder.comments


def test_events_in_contract_order_with_sequential_ids():
    stream = ScriptedStream(
        ReasoningDelta("hmm"), TextDelta("Hi"), TextDelta(" there"), Usage(1, 2, 3), Finish(StopReason.STOP)
    )
    relay, _chunks, events, _ = relay_all(stream)
    assert [e.event for e in events] == ["start", "reasoning", "token", "token", "usage", "done"]
    assert [e.id for e in events] == [f"{relay.stream_id}:{n}" for n in range(1, 7)]
    assert events[0].json() == {"stream_id": relay.stream_id, "model": "scripted"}
    assert events[4].json() == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert events[-1].json() == {"finish_reason": "stop"}


def test_first_bytes_are_a_keep_alive_comment_and_the_start_event():
    _, chunks, _, _ = relay_all(ScriptedStream(Finish(StopReason.STOP)))
    assert chunks[0].startswith(b": keep-alive\n\n")
    assert b"event: start" in chunks[0]


def test_stream_ids_are_unguessable():
    ids = {Relay(ScriptedStream(), RelayLimits()).stream_id for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) >= 22 for i in ids)  # 16 random bytes in URL-safe base64


def test_heartbeats_flow_while_the_model_is_silent():
    _, _, events, comments = relay_all(
        ScriptedStream(0.35, TextDelta("late"), Finish(StopReason.STOP)), heartbeat_s=0.05
    )
    assert comments.count("keep-alive") >= 4
    assert [e.event for e in events] == ["start", "token", "done"]


def test_upstream_error_becomes_error_then_done_error():
    stream = ScriptedStream(TextDelta("part"), UpstreamError(FailureKind.RATE_LIMITED, "slow down"))
    _, _, events, _ = relay_all(stream)
    assert [e.event for e in events] == ["start", "token", "error", "done"]
    assert events[2].json() == {"code": "upstream_rate_limited", "message": "slow down"}
    assert events[3].json() == {"finish_reason": "error"}


def test_an_unexpected_exception_becomes_internal_error(caplog):
    _, _, events, _ = relay_all(ScriptedStream(TextDelta("x"), RuntimeError("bug")))
    assert [e.event for e in events][-2:] == ["error", "done"]
    assert events[-2].json()["code"] == "internal_error"
    assert "bug" not in events[-2].data


def test_events_already_queued_are_written_together():
    script = [TextDelta(str(i)) for i in range(50)]
    _, chunks, events, _ = relay_all(ScriptedStream(0.05, *script, Finish(StopReason.STOP)))
    assert len([e for e in events if e.event == "token"]) == 50
    assert len(chunks) < 10


def test_closing_the_response_closes_the_model_stream():
    stream = ScriptedStream(TextDelta("a"), 30.0, Finish(StopReason.STOP))
    frames = Relay(stream, RelayLimits()).frames()
    next(frames)  # start
    next(frames)  # the token
    frames.close()  # what the server does when the client is gone
    assert stream.closed.is_set()


@pytest.mark.parametrize("reason", ["stop", "length"])
def test_finish_reason_is_passed_on(reason):
    _, _, events, _ = relay_all(ScriptedStream(Finish(reason)))
    assert events[-1].json() == {"finish_reason": reason}


def test_cancel_ends_a_connected_stream_with_done_cancelled():
    stream = ScriptedStream(TextDelta("a"), 30.0, Finish(StopReason.STOP))
    relay = Relay(stream, RelayLimits())
    frames = relay.frames()
    decoder = SseDecoder()
    events = [*decoder.feed(next(frames)), *decoder.feed(next(frames))]
    relay.cancel(Cause.STOPPED)
    events += [e for chunk in frames for e in decoder.feed(chunk)]
    assert [e.event for e in events] == ["start", "token", "done"]
    assert events[-1].json() == {"finish_reason": "cancelled"}
    assert stream.closed.is_set()


def test_a_stream_over_its_time_limit_ends_with_upstream_timeout():
    stream = ScriptedStream(TextDelta("a"), 30.0, Finish(StopReason.STOP))
    start = time.monotonic()
    _, _, events, _ = relay_all_with(stream, RelayLimits(heartbeat_s=0.05, max_stream_s=0.3))
    assert time.monotonic() - start < 2
    assert [e.event for e in events] == ["start", "token", "error", "done"]
    assert events[-2].json()["code"] == "upstream_timeout"
    assert events[-1].json() == {"finish_reason": "error"}
    assert stream.closed.is_set()


def test_the_registry_cancels_by_id_and_forgets_finished_streams():
    registry = StreamRegistry(write_timeout_s=30)
    stream = ScriptedStream(TextDelta("a"), 30.0, Finish(StopReason.STOP))
    relay = Relay(stream, RelayLimits(), registry=registry)
    frames = relay.frames()
    next(frames)
    assert registry.cancel(relay.stream_id) is True
    assert [e.event for chunk in frames for e in SseDecoder().feed(chunk)][-1] == "done"
    assert registry.cancel(relay.stream_id) is False
    assert len(registry) == 0


def test_a_model_faster_than_the_client_is_read_only_as_the_client_reads():
    """Regression: a model read ahead of a client that stopped reading grew the worker's memory."""
    stream = ScriptedStream(*[x for i in range(1000) for x in (TextDelta(str(i)), 0.0)])
    frames = Relay(stream, RelayLimits()).frames()
    next(frames)  # the client reads the start and one batch of tokens, then stops reading
    next(frames)
    # A relay that read ahead would have read the rest of the script by now.
    assert not wait_until(lambda: stream.reads > 3, timeout=0.3)
    frames.close()
    assert stream.closed.is_set()


def test_an_error_when_opening_becomes_error_then_done():
    class Unreachable(ScriptedStream):
        def open(self):
            raise UpstreamError(FailureKind.UNREACHABLE, "no route")

    _, _, events, _ = relay_all(Unreachable())
    assert [e.event for e in events] == ["start", "error", "done"]
    assert events[1].json() == {"code": "upstream_unreachable", "message": "no route"}


def test_heartbeats_flow_while_the_model_has_not_answered():
    class SlowToAnswer(ScriptedStream):
        def open(self):
            time.sleep(0.3)

    _, _, events, comments = relay_all(
        SlowToAnswer(TextDelta("hi"), Finish(StopReason.STOP)), heartbeat_s=0.05
    )
    assert comments.count("keep-alive") >= 4
    assert [e.event for e in events] == ["start", "token", "done"]


def test_cancel_while_the_model_has_not_answered_ends_at_once():
    class NeverAnswers(ScriptedStream):
        def open(self):
            self.closed.wait(30)

    relay = Relay(NeverAnswers(), RelayLimits())
    frames = relay.frames()
    next(frames)
    threading.Timer(0.1, relay.cancel, args=("stopped",)).start()
    start = time.monotonic()
    rest = [e for chunk in frames for e in SseDecoder().feed(chunk)]
    assert time.monotonic() - start < 2
    assert [e.event for e in rest] == ["done"]
    assert rest[0].json() == {"finish_reason": "cancelled"}
