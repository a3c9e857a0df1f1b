"""One request's stream: a backend's events in, `text/event-stream` frames out.

The response's own greenlet (under gunicorn's gevent worker; a thread under
`flask run`) reads the model: `ModelStream.read(timeout)` returns what arrived,
and the relay writes all of it as one chunk, so a fast stream costs fewer
system calls and no token is held back. When a read times out with nothing
written for `heartbeat_s`, a keep-alive comment goes out instead. One greenlet
per stream on the per-token path, no queue and no hand-over between two:
that, and reading the upstream socket directly, is where the relay's CPU per
token went (docs/performance.md). A model faster than its client waits: the
relay reads only after the client's socket took the previous write.

Only `open()`, which waits for the model's headers, runs in a helper
(opening.py), so that heartbeats flow while a slow server has not answered.

What the frames say is `protocol.EventWriter`'s job; this module decides when:
every stream ends with exactly one `done` event unless the client is gone, and
an upstream failure becomes an `error` event first.

`cancel()` ends a stream from outside, at once: the disconnect watcher calls it
when the client's socket closes, the stop endpoint when asked, the registry's
sweeper when the client stopped reading, the worker when it shuts down. It
closes the upstream (which ends a blocked read, or interrupts a helper still
waiting for the upstream's headers), and a client that is still there gets
`done`/`cancelled`.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from .. import sse
from ..llm.base import (
    BackendEvent,
    Finish,
    ModelStream,
    ReasoningDelta,
    TextDelta,
    UpstreamError,
    Usage,
)
from ..protocol import (
    EventWriter,
    FinishReason,
    StreamErrorCode,
    finish_reason_for,
    new_stream_id,
    stream_error_code,
)
from .delivery import WriteClock
from .greenlets import ReadWake, current_greenlet, hang_up, wake_read, watch_for_disconnect
from .opening import ModelOpener
from .registry import Cause, LiveStream, StreamRegistry
from .stream_end import StreamObserver, StreamStats, log_stream_end

log = logging.getLogger(__name__)

KEEP_ALIVE = sse.KEEP_ALIVE

# Shortest wait for a read: a zero timeout would make the socket non-blocking.
MIN_WAIT_S = 0.001


@dataclass(frozen=True)
class RelayLimits:
    heartbeat_s: float = 15.0
    max_stream_s: float = 600.0


class Relay:
    def __init__(
        self,
        model_stream: ModelStream,
        limits: RelayLimits,
        *,
        registry: StreamRegistry | None = None,
        client_socket: socket.socket | None = None,
        client: str | None = None,
        stream_id: str | None = None,
        observer: StreamObserver | None = None,
        start_fields: dict[str, str] | None = None,
    ) -> None:
        self.stream_id = stream_id or new_stream_id()
        # What the registry holds for this stream: the relay, or what runs it (resumable.AnswerJob).
        self.live: LiveStream = self
        self.model_stream = model_stream
        self._writer = EventWriter(self.stream_id)
        self._limits = limits
        self._registry = registry
        self._socket = client_socket
        self._client = client
        self._cancel_cause: Cause | None = None
        self._opener = ModelOpener(model_stream, f"open-{self.stream_id}")
        self._clock = WriteClock(client_socket)
        self._done_sent = False
        # While the relay waits in a read with no timeout: when the sweeper should wake it.
        self._wake_at: float | None = None
        self._reader: Any | None = None
        self._observer = observer
        self._start_fields = start_fields or {}
        self._error: tuple[StreamErrorCode, str] | None = None
        self.stats = StreamStats()

    @property
    def sequence(self) -> int:
        """The sequence number of the last event written."""
        return self._writer.sequence

    # -- the response body --------------------------------------------------------------

    def frames(self) -> Generator[bytes, None, None]:
        """The response body. Closing this generator early cancels the model."""
        stop_watching = None
        try:
            if self._registry is not None:
                self._registry.add(self.live)
            if self._observer is not None:
                self._observer.began()
            stop_watching = watch_for_disconnect(self._socket, lambda: self.cancel(Cause.CLIENT_GONE))
            # Bytes at once: proxies and the browser see the stream open before the model speaks.
            start = self._writer.start(self.model_stream.model, **self._start_fields)
            yield from self._write(KEEP_ALIVE + start)
            self._reader = current_greenlet()
            if (yield from self._open()):
                yield from self._relay_events()
        finally:
            if stop_watching is not None:
                stop_watching()
            if self._registry is not None:
                self._registry.remove(self.live)
            if self._done_sent:
                self.model_stream.close()  # already ended by the backend; makes sure
            else:
                self.cancel(Cause.CLIENT_GONE)  # the server closed the body: the client is gone
                self._end(FinishReason.CANCELLED)
            log_stream_end(
                self.stream_id, self.model_stream.model, self.stats, self._cancel_cause, self._client
            )

    def _open(self) -> Generator[bytes, None, bool]:
        """Send the request in a helper, with heartbeats until the model answers; True once it has."""
        opener = self._opener
        opener.start()
        deadline = self.stats.started + self._limits.max_stream_s
        while not opener.wait(min(self._limits.heartbeat_s, deadline - time.monotonic())):
            if self._cancel_cause is not None:
                break
            if time.monotonic() >= deadline:
                yield from self._write(self._too_long())
                return False
            yield from self._write(KEEP_ALIVE)
        if self._cancel_cause is not None:
            yield from self._write_cancelled()
            return False
        if opener.failure is not None:
            yield from self._write(self._failed(opener.failure))
            return False
        return True

    def _relay_events(self) -> Iterator[bytes]:
        heartbeat_s = self._limits.heartbeat_s
        deadline = self.stats.started + self._limits.max_stream_s
        read = self._read_woken if self._registry is not None and self._registry.wakes_reads else self._read
        next_beat = time.monotonic() + heartbeat_s
        while True:
            now = time.monotonic()
            if now >= deadline:
                yield from self._write(self._too_long())
                return
            if now >= next_beat:
                yield from self._write(KEEP_ALIVE)
                next_beat = now + heartbeat_s
            try:
                events = read(min(next_beat, deadline))
            except Exception as exc:
                if self._cancel_cause is None:
                    yield from self._write(self._failed(exc))
                    return
                events = []
            if self._cancel_cause is not None:
                yield from self._write_cancelled()
                return
            if not events:
                continue
            if self._observer is not None:
                self._observer.seen(events)
            out: list[bytes] = []
            finished = False
            for event in events:
                finished = self._encode(event, out)
            # Inlined _write: this is the per-token path.
            clock = self._clock
            clock.since = time.monotonic()
            yield b"".join(out)
            clock.since = None
            if finished:
                return
            next_beat = time.monotonic() + heartbeat_s

    def _read(self, wake_at: float) -> list[BackendEvent]:
        return self.model_stream.read(max(wake_at - time.monotonic(), MIN_WAIT_S))

    def _read_woken(self, wake_at: float) -> list[BackendEvent]:
        """Read with no timeout; the registry's sweeper raises ReadWake here once `wake_at` is due.
        (A read with a timeout costs a gevent Timeout per token: ~15% of the relay's CPU.)"""
        self._wake_at = wake_at
        try:
            return self.model_stream.read(None)
        except ReadWake:
            return []
        finally:
            self._wake_at = None

    def wake_if_due(self, now: float) -> None:
        """Called by the registry's sweeper: end a read that has waited past its wake time."""
        wake_at = self._wake_at
        if wake_at is not None and now >= wake_at and self._reader is not None:
            wake_read(self._reader, self._read_is_due)

    def _read_is_due(self) -> bool:
        return self._wake_at is not None and time.monotonic() >= self._wake_at

    def _write(self, chunk: bytes) -> Iterator[bytes]:
        # The server writes a yielded chunk before it asks for the next, so the time spent
        # suspended here is the time the client's socket takes to accept it.
        self._clock.since = time.monotonic()
        yield chunk
        self._clock.since = None

    # -- what to write ------------------------------------------------------------------

    def _encode(self, item: BackendEvent, out: list[bytes]) -> bool:
        """Append the frames for one event; True when it ends the stream."""
        if type(item) is TextDelta:
            if self.stats.first_token_at is None:
                self.stats.first_token_at = time.monotonic()
            self.stats.tokens += 1
            out.append(self._writer.token(item.text))
        elif type(item) is ReasoningDelta:
            out.append(self._writer.reasoning(item.text))
        elif type(item) is Usage:
            out.append(self._writer.usage(item))
        elif type(item) is Finish:
            out.append(self._done(finish_reason_for(item.reason)))
            return True
        return False

    def _write_cancelled(self) -> Iterator[bytes]:
        if self._cancel_cause != Cause.CLIENT_GONE:
            yield from self._write(self._done(FinishReason.CANCELLED))

    def _failed(self, exc: BaseException) -> bytes:
        if isinstance(exc, UpstreamError):
            code, message = stream_error_code(exc.kind), exc.message
        else:
            log.error("model stream %s failed", self.stream_id, exc_info=exc)
            code = StreamErrorCode.INTERNAL_ERROR
            message = "Something went wrong in chatapp while streaming."
        return self._error_then_done(code, message)

    def _too_long(self) -> bytes:
        self.cancel(Cause.MAX_DURATION)
        message = f"The answer took longer than chatapp's limit of {self._limits.max_stream_s:g} s."
        return self._error_then_done(StreamErrorCode.UPSTREAM_TIMEOUT, message)

    def _error_then_done(self, code: StreamErrorCode, message: str) -> bytes:
        self._error = (code, message)
        return self._writer.error(code, message) + self._done(FinishReason.ERROR)

    def _done(self, reason: FinishReason) -> bytes:
        self._done_sent = True
        self._end(reason)
        served = self.model_stream.served_model
        return self._writer.done(reason, served if served != self.model_stream.model else None)

    def _end(self, reason: FinishReason) -> None:
        self.stats.finish_reason = reason
        if self._observer is None:
            return
        end = self.stats.end(self._cancel_cause, self._error, self.model_stream.served_model)
        try:
            self._observer.ended(end)
        except Exception:  # the answer was streamed; failing to keep it must not break the stream
            log.exception("stream %s: could not record its end", self.stream_id)

    # -- ending it ---------------------------------------------------------------------

    def cancel(self, cause: Cause) -> None:
        """End the stream now: close the upstream request, and end the response with
        `done`/`cancelled` if the client is still there. Safe to call more than once."""
        if self._cancel_cause is not None:
            return
        self._cancel_cause = cause
        self.model_stream.close()
        # Closing the stream ends a blocked read, but before the upstream has sent its headers
        # there is nothing to close yet: the opener interrupts its helper, and wakes the relay.
        self._opener.cancel()

    def write_stalled_s(self, now: float) -> float:
        """How long the write in progress has gone without the client taking a byte."""
        return self._clock.stalled_s(now)

    def adopt(self) -> None:
        """The calling greenlet iterates the frames from now on (it took them over from the
        response's greenlet): the one the sweeper must wake."""
        if self._reader is not None:
            self._reader = current_greenlet()

    def hang_up(self) -> None:
        """Cut a client that stopped reading: its blocked write fails, and the stream ends."""
        self.cancel(Cause.WRITE_TIMEOUT)
        if self._socket is not None:
            hang_up(self._socket)
