"""One request's stream: a backend's events in, `text/event-stream` frames out.

The model is read in its own thread of control (a greenlet under gunicorn's
gevent worker, where `threading` and `queue` are patched; a real thread under
`flask run`), so that the response can send heartbeats while the model is
silent. The response side waits on a queue, takes every event that is
already there, and writes them as one chunk: fast streams cost fewer system
calls and no token is held back.

Every stream ends with exactly one `done` event unless the client is gone;
an upstream failure becomes an `error` event first.

`cancel()` ends a stream from outside, at once: the disconnect watcher calls it
when the client's socket closes, the stop endpoint when asked, the registry's
sweeper when the client stopped reading, the worker when it shuts down. It
closes the upstream response (and interrupts a producer still waiting for the
upstream's headers), and a client that is still there gets `done`/`cancelled`.
The queue between the two sides is bounded, so a model faster than its client
waits instead of piling events up in memory.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import sse
from .llm.base import (
    BackendEvent,
    Finish,
    FinishReason,
    ModelStream,
    ReasoningDelta,
    TextDelta,
    UpstreamCode,
    UpstreamError,
    Usage,
)
from .streams import Cause, StreamRegistry, current_greenlet, interrupt, watch_for_disconnect

log = logging.getLogger(__name__)

KEEP_ALIVE = sse.comment_frame("keep-alive")


class EventName:
    """The SSE event names of the public contract (docs/api.md)."""

    START = "start"
    REASONING = "reasoning"
    TOKEN = "token"
    USAGE = "usage"
    ERROR = "error"
    DONE = "done"


def new_stream_id() -> str:
    """An unguessable id (128 random bits), safe in URLs and in an SSE `id:` line."""
    return secrets.token_urlsafe(16)


_END = object()  # the producer has put everything it had
_WAKE = object()  # cancel() nudging a consumer that waits on the queue

# Events the model may run ahead of a slow client before it waits: enough to absorb
# bursts, small enough that a client that stops reading holds little memory.
MAX_BUFFERED_EVENTS = 256


@dataclass
class StreamStats:
    """What the one log line at the end of a stream reports."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    tokens: int = 0
    finish_reason: str = FinishReason.CANCELLED


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
    ) -> None:
        self.stream_id = new_stream_id()
        self.model_stream = model_stream
        self._limits = limits
        self._registry = registry
        self._socket = client_socket
        self._client = client
        self._seq = 0
        self._events: queue.Queue[object] = queue.Queue(MAX_BUFFERED_EVENTS)
        self._cancel_cause: str | None = None
        self._producer: object | None = None
        self._writing_since: float | None = None
        self._done_sent = False
        self.stats = StreamStats()

    # -- the response body --------------------------------------------------------------

    def frames(self) -> Iterator[bytes]:
        """The response body. Closing this generator early cancels the model."""
        stop_watching = None
        try:
            if self._registry is not None:
                self._registry.add(self)
            stop_watching = watch_for_disconnect(self._socket, lambda: self.cancel(Cause.CLIENT_GONE))
            threading.Thread(target=self._produce, name=f"model-{self.stream_id}", daemon=True).start()
            # Bytes at once: proxies and the browser see the stream open before the model speaks.
            start = {"stream_id": self.stream_id, "model": self.model_stream.model}
            yield from self._write(KEEP_ALIVE + self._frame(EventName.START, start))
            yield from self._relay_events()
        finally:
            if stop_watching is not None:
                stop_watching()
            if self._registry is not None:
                self._registry.remove(self)
            if self._done_sent:
                self.model_stream.close()  # already closed by the backend; makes sure
            else:
                self.cancel(Cause.CLIENT_GONE)  # the server closed the body: the client is gone
            self._drain()
            self._log_end()

    def _relay_events(self) -> Iterator[bytes]:
        deadline = self.stats.started + self._limits.max_stream_s
        while True:
            if self._cancel_cause is not None:
                if self._cancel_cause != Cause.CLIENT_GONE:
                    yield from self._write(self._done(FinishReason.CANCELLED))
                return
            wait = min(self._limits.heartbeat_s, deadline - time.monotonic())
            if wait <= 0:
                yield from self._write(self._too_long())
                return
            try:
                item = self._events.get(timeout=wait)
            except queue.Empty:
                if time.monotonic() < deadline:
                    yield from self._write(KEEP_ALIVE)
                continue
            out: list[bytes] = []
            finished = self._encode(item, out)
            while not finished:
                try:
                    item = self._events.get_nowait()
                except queue.Empty:
                    break
                finished = self._encode(item, out)
            if out:
                # Inlined _write: this is the per-token path.
                self._writing_since = time.monotonic()
                yield b"".join(out)
                self._writing_since = None
            if finished:
                return

    def _write(self, chunk: bytes) -> Iterator[bytes]:
        # The server writes a yielded chunk before it asks for the next, so the time spent
        # suspended here is the time the client's socket takes to accept it.
        self._writing_since = time.monotonic()
        yield chunk
        self._writing_since = None

    def _too_long(self) -> bytes:
        self.cancel(Cause.MAX_DURATION)
        message = f"The answer took longer than chatapp's limit of {self._limits.max_stream_s:g} s."
        error = self._frame(EventName.ERROR, {"code": UpstreamCode.TIMEOUT, "message": message})
        return error + self._done(FinishReason.ERROR)

    def _encode(self, item: object, out: list[bytes]) -> bool:
        """Append the frames for one queued item; True when it ends the stream."""
        if type(item) is TextDelta:
            if self.stats.first_token_at is None:
                self.stats.first_token_at = time.monotonic()
            self.stats.tokens += 1
            out.append(self._frame(EventName.TOKEN, {"text": item.text}))
        elif type(item) is ReasoningDelta:
            out.append(self._frame(EventName.REASONING, {"text": item.text}))
        elif type(item) is Usage:
            out.append(
                self._frame(
                    EventName.USAGE,
                    {
                        "prompt_tokens": item.prompt_tokens,
                        "completion_tokens": item.completion_tokens,
                        "total_tokens": item.total_tokens,
                    },
                )
            )
        elif type(item) is Finish:
            out.append(self._done(item.reason))
            return True
        elif type(item) is UpstreamError:
            out.append(self._frame(EventName.ERROR, {"code": item.code, "message": item.message}))
            out.append(self._done(FinishReason.ERROR))
            return True
        elif item is _END:
            # The model stream ended without a Finish: it was closed (cancelled).
            out.append(self._done(FinishReason.CANCELLED))
            return True
        return False

    def _done(self, reason: str) -> bytes:
        self._done_sent = True
        self.stats.finish_reason = reason
        return self._frame(EventName.DONE, {"finish_reason": reason})

    def _frame(self, event: str, payload: object) -> bytes:
        self._seq += 1
        return sse.json_event_frame(event, payload, f"{self.stream_id}:{self._seq}")

    # -- the model side ----------------------------------------------------------------

    def _produce(self) -> None:
        self._producer = current_greenlet()
        put = self._events.put
        try:
            event: BackendEvent
            for event in self.model_stream:
                if self._cancel_cause is not None:
                    return
                put(event)
        except UpstreamError as exc:
            if self._cancel_cause is None:
                put(exc)
        except Exception:
            if self._cancel_cause is None:
                log.exception("model stream %s failed", self.stream_id)
                put(UpstreamError(UpstreamCode.INTERNAL, "Something went wrong in chatapp while streaming."))
        except BaseException:
            # cancel() interrupts a producer blocked before the upstream answered (GreenletExit):
            # the expected way for it to end, not an error to report.
            if self._cancel_cause is None:
                raise
        finally:
            self._producer = None
            if self._cancel_cause is None:
                put(_END)  # the consumer is there to take it
            else:
                _put_nowait(self._events, _END)

    # -- ending it ---------------------------------------------------------------------

    def cancel(self, cause: str) -> None:
        """End the stream now: close the upstream request, and end the response with
        `done`/`cancelled` if the client is still there. Safe to call more than once."""
        if self._cancel_cause is not None:
            return
        self._cancel_cause = cause
        self.model_stream.close()
        if self._producer is not None:
            # Closing the response ends a blocked read, but before the upstream has sent
            # its headers there is no response to close: interrupt the greenlet itself.
            interrupt(self._producer)
        _put_nowait(self._events, _WAKE)

    def write_stalled_s(self, now: float) -> float:
        since = self._writing_since
        return 0.0 if since is None else now - since

    def hang_up(self) -> None:
        """Cut a client that stopped reading: its blocked write fails, and the stream ends."""
        self.cancel(Cause.WRITE_TIMEOUT)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def _drain(self) -> None:
        """Empty the queue, so that a producer blocked on a full queue can finish."""
        while True:
            try:
                self._events.get_nowait()
            except queue.Empty:
                return

    def _log_end(self) -> None:
        s = self.stats
        ttft = f"{(s.first_token_at - s.started) * 1000:.0f}" if s.first_token_at else "-"
        log.info(
            "stream end id=%s model=%s finish_reason=%s cause=%s tokens=%d ttft_ms=%s "
            "duration_ms=%.0f client=%s",
            self.stream_id,
            self.model_stream.model,
            s.finish_reason,
            self._cancel_cause if s.finish_reason == FinishReason.CANCELLED else "-",
            s.tokens,
            ttft,
            (time.monotonic() - s.started) * 1000,
            self._client or "-",
        )


def _put_nowait(events: queue.Queue[object], item: object) -> None:
    with contextlib.suppress(queue.Full):
        events.put_nowait(item)
