"""Answers that outlive their connection: a stored conversation's answer is generated to its end
whatever happens to the connection that asked for it, and written to an `AnswerLog` that any
reader can follow (`GET /api/streams/<id>`).

While its first client is connected, the answer's relay runs in that response's greenlet, as
every stream does (one greenlet per stream on the per-token path: where the relay's CPU went,
docs/performance.md); each chunk is appended to the log on its way out. When that client goes
away (its write fails, or the write timeout cuts it), the relay, suspended at a yield, is handed
to a greenlet of its own that runs it to the end. An answer ends by itself (`done`), by the stop
endpoint, by the relay's limits (`CHATAPP_MAX_STREAM_S`, the upstream idle limit), by shutdown
(the registry's drain cancels it like any stream), or when nobody has read it for
`CHATAPP_DETACHED_MAX_S`.

An ended answer's log is kept for `CHATAPP_STREAM_RETENTION_S`, so that a reader that comes back
after the end still gets everything up to `done`; after that the stored message is the truth.

What makes an answer resumable lives here: the registry holds the `AnswerJob`, not its relay, so
that cutting a client that stopped reading cuts that client only, and the relay, built with no
client socket, never ends with a connection. `FollowReader` is a connection that follows an answer
it does not run, from this process's log or another's (coordination/).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Generator, Iterator

from .admission import Release
from .answer_log import KEEP_ALIVE, AnswerLog
from .coordination import Coordinator
from .delivery import WriteClock
from .greenlets import hang_up
from .registry import Cause, StreamRegistry
from .relay import Relay

log = logging.getLogger(__name__)

# How often ended logs are dropped and unread answers looked for.
TICK_S = 1.0


class AnswerJob:
    """One resumable answer: its relay, its log, and who runs the relay now. What the registry
    holds for the answer (`registry.LiveStream`)."""

    def __init__(
        self,
        relay: Relay,
        answer_log: AnswerLog,
        release: Release,
        coordinator: Coordinator,
        first_client: socket.socket | None,
    ) -> None:
        self.relay = relay
        self.log = answer_log
        self._release = release
        self._coordinator = coordinator
        self._first_client = first_client
        self._clock = WriteClock(first_client)
        self._frames: Generator[bytes, None, None] | None = None
        self._detached = False
        self._finished = False
        relay.live = self

    # -- what the registry asks of a live stream ----------------------------------------

    @property
    def stream_id(self) -> str:
        return self.relay.stream_id

    def cancel(self, cause: Cause) -> None:
        self.relay.cancel(cause)

    def write_stalled_s(self, now: float) -> float:
        """How long the first client has not taken the write in progress (0 once detached)."""
        return self._clock.stalled_s(now)

    def hang_up(self) -> None:
        """Cut the first client, which stopped reading; the answer goes on without it."""
        if self._first_client is not None:
            hang_up(self._first_client)

    def wake_if_due(self, now: float) -> None:
        self.relay.wake_if_due(now)

    # -- running it ----------------------------------------------------------------------

    def first_reader(self) -> Iterator[bytes]:
        """The body of the response that started the answer: the relay's frames as any stream's,
        each logged on its way out. If this client leaves, the answer goes on without it."""
        frames = self._frames = self.relay.frames()
        self.log.reader_joined()
        try:
            clock = self._clock
            for chunk in frames:
                self._record(chunk)
                clock.since = time.monotonic()
                yield chunk
                clock.since = None
        except GeneratorExit:  # the server closed this body: the client is gone
            self.detach()
            raise
        finally:
            self._clock.since = None  # a write the gone client never took is no longer waiting
            self.log.reader_left()
            if not self._detached:
                self._finish()

    def response_closed(self) -> None:
        """The response is closed; if its body never ran (the client left first), run it alone."""
        if self._frames is None:
            self.detach()

    def detach(self) -> None:
        if self._detached or self._finished:
            return
        self._detached = True
        threading.Thread(target=self._run_alone, name=f"answer-{self.relay.stream_id}", daemon=True).start()

    def _run_alone(self) -> None:
        frames = self._frames
        if frames is None:
            frames = self._frames = self.relay.frames()
        self.relay.adopt()
        try:
            for chunk in frames:
                self._record(chunk)
        except Exception:
            log.exception("answer %s failed", self.relay.stream_id)
        finally:
            frames.close()
            self._finish()

    def _record(self, chunk: bytes) -> None:
        # The relay's keep-alives are for its client's socket; each reader sends its own.
        if chunk.startswith(KEEP_ALIVE):
            chunk = chunk[len(KEEP_ALIVE) :]
        if chunk:
            self.log.append(chunk, self.relay.sequence)
            self._coordinator.changed(self.log)

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self.log.end()
        self._coordinator.changed(self.log)
        self._release()


class AnswerJobs:
    """This process's resumable answers: those running and those recently ended."""

    def __init__(
        self, registry: StreamRegistry, coordinator: Coordinator, *, retention_s: float, unread_max_s: float
    ) -> None:
        self._registry = registry
        self._coordinator = coordinator
        self._retention_s = retention_s
        self._unread_max_s = unread_max_s
        self._logs: dict[str, AnswerLog] = {}
        self._ticker: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._logs)

    def start(self, relay: Relay, release: Release, first_client: socket.socket | None) -> AnswerJob:
        """A job for `relay` (built with no client socket: the answer outlives its connection), whose
        `first_reader()` is the body of the response that asked for it, on `first_client`'s socket;
        `release` (its admission) is called once the answer ended."""
        answer_log = AnswerLog(relay.stream_id)
        self._logs[relay.stream_id] = answer_log
        self._coordinator.mirror(answer_log)
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="answer-jobs", daemon=True)
            self._ticker.start()
        return AnswerJob(relay, answer_log, release, self._coordinator, first_client)

    def log_for(self, stream_id: str) -> AnswerLog | None:
        """The log of an answer of this process, running or ended within the retention."""
        answer_log = self._logs.get(stream_id)
        if answer_log is None or self._expired(answer_log, time.monotonic()):
            return None
        return answer_log

    def _expired(self, answer_log: AnswerLog, now: float) -> bool:
        return answer_log.ended_at is not None and now - answer_log.ended_at > self._retention_s

    def _tick(self) -> None:
        while True:
            time.sleep(TICK_S)
            now = time.monotonic()
            for stream_id, answer_log in list(self._logs.items()):
                if self._expired(answer_log, now):
                    del self._logs[stream_id]
                elif self._unread_too_long(answer_log, now):
                    log.info("answer %s: nobody read it for %g s; ending it", stream_id, self._unread_max_s)
                    self._registry.cancel(stream_id, Cause.UNREAD)

    def _unread_too_long(self, answer_log: AnswerLog, now: float) -> bool:
        since = answer_log.unread_since
        if not self._unread_max_s or answer_log.ended or since is None or now - since < self._unread_max_s:
            return False
        if self._coordinator.read_elsewhere(answer_log.stream_id):
            answer_log.unread_since = now
            return False
        return True


class FollowReader:
    """A response that follows an answer it does not run (this process's log, or another's through
    coordination/): a reader that stops taking bytes is cut after the write timeout, as a stream's
    own client is (the registry's sweeper asks `write_stalled_s`)."""

    def __init__(self, frames: Iterator[bytes], registry: StreamRegistry, sock: socket.socket | None) -> None:
        self._frames = frames
        self._registry = registry
        self._socket = sock
        self._clock = WriteClock(sock)

    def body(self) -> Iterator[bytes]:
        self._registry.add_reader(self)
        clock = self._clock
        try:
            for chunk in self._frames:
                clock.since = time.monotonic()
                yield chunk
                clock.since = None
        finally:
            self._registry.remove_reader(self)
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()

    def write_stalled_s(self, now: float) -> float:
        return self._clock.stalled_s(now)

    def hang_up(self) -> None:
        if self._socket is not None:
            hang_up(self._socket)
