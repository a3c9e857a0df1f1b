"""The live streams of this worker process, and the watchers that end them.

- `StreamRegistry`: stream id -> the stream, so that `POST /api/chat/<id>/stop`
  can cancel it, a sweeper can cut clients that stopped reading (and wake
  relays blocked in a read with no timeout when their heartbeat is due:
  `wake_read`), and a shutting-down worker can end what is left.
- `watch_for_disconnect`: a greenlet per stream that waits until the client's
  socket is readable and peeks. A generator view only learns that the client
  left on its next write, and while the model is silent nothing is written; the
  peek sees the close at once, so the upstream request is ended at once too.

The watcher needs gunicorn's gevent worker (`environ["gunicorn.socket"]` and a
patched world). Elsewhere (`flask run`) streams fall back to noticing a gone
client on the next write or heartbeat.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class LiveStream(Protocol):
    stream_id: str

    def cancel(self, cause: str) -> None: ...

    def write_stalled_s(self, now: float) -> float: ...

    def hang_up(self) -> None: ...

    def wake_if_due(self, now: float) -> None: ...


class ReadWake(TimeoutError):
    """Raised in a relay's blocking read when the relay has something to do (a heartbeat is due,
    the stream's time is up): the read ends as a read that timed out would."""


class Cause:
    """Why a stream was cancelled, for the log line."""

    STOPPED = "stopped"  # POST /api/chat/<id>/stop
    CLIENT_GONE = "client_gone"  # the connection closed
    WRITE_TIMEOUT = "write_timeout"  # the client stopped reading
    SHUTDOWN = "shutdown"  # the worker is exiting
    MAX_DURATION = "max_duration"  # CHATAPP_MAX_STREAM_S ran out (reported as an error)


class WorkerFull(Exception):
    """This worker holds as many streams as it may (CHATAPP_MAX_STREAMS_PER_WORKER)."""


class ClientBusy(Exception):
    """This client has as many streams open as it may (CHATAPP_MAX_STREAMS_PER_CLIENT)."""


class StreamRegistry:
    def __init__(
        self, write_timeout_s: float, max_streams: int = 0, max_per_client: int = 0, tick_s: float = 1.0
    ) -> None:
        self._streams: dict[str, LiveStream] = {}
        self.draining = False
        self._write_timeout_s = write_timeout_s
        # How often the sweeper looks at every stream: the precision of write timeouts, and of
        # heartbeats and deadlines for relays whose reads it wakes.
        self._tick_s = tick_s
        self._sweeper: threading.Thread | None = None
        # Admission: streams admitted and not yet closed, in all and per client (0: no cap).
        self._max_streams = max_streams
        self._max_per_client = max_per_client
        self._admitted = 0
        self._per_client: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._streams)

    def admit(self, client: str) -> None:
        """Count a new stream in, or refuse it: a full worker sheds load rather than slowing
        every stream it holds. Each admit is paired with one `release`."""
        if self._max_streams and self._admitted >= self._max_streams:
            raise WorkerFull
        if self._max_per_client and self._per_client[client] >= self._max_per_client:
            raise ClientBusy
        self._admitted += 1
        self._per_client[client] += 1

    def release(self, client: str) -> None:
        self._admitted -= 1
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]

    def add(self, stream: LiveStream) -> None:
        self._streams[stream.stream_id] = stream
        if self._sweeper is None:
            # Started on first use, so that under gunicorn it is a greenlet of the worker.
            self._sweeper = threading.Thread(target=self._sweep, name="stream-sweeper", daemon=True)
            self._sweeper.start()

    def remove(self, stream: LiveStream) -> None:
        if self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]

    def cancel(self, stream_id: str, cause: str = Cause.STOPPED) -> bool:
        """Cancel a running stream; False when no stream with that id runs in this process."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return False
        stream.cancel(cause)
        return True

    def cancel_all(self, cause: str) -> int:
        streams = list(self._streams.values())
        for stream in streams:
            stream.cancel(cause)
        return len(streams)

    def drain(self, deadline: float) -> int:
        """Let running streams finish until `deadline` (monotonic), then cancel the rest."""
        self.draining = True
        while self._streams and time.monotonic() < deadline:
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
        return self.cancel_all(Cause.SHUTDOWN)

    @property
    def wakes_reads(self) -> bool:
        """True when the sweeper can wake relays blocked in a read (gevent), so that they can read
        without a timeout: a gevent `Timeout` per read costs more than the rest of the read."""
        return gevent_patched()

    def _sweep(self) -> None:
        """Hang up on clients whose socket accepted nothing for the write timeout; wake relays
        whose heartbeat or deadline is due."""
        interval = min(self._tick_s, self._write_timeout_s / 4)
        while True:
            time.sleep(interval)
            now = time.monotonic()
            for stream in list(self._streams.values()):
                if stream.write_stalled_s(now) > self._write_timeout_s:
                    log.info("stream %s: client stopped reading; hanging up", stream.stream_id)
                    stream.hang_up()
                else:
                    stream.wake_if_due(now)


def watch_for_disconnect(
    client: socket.socket | None, on_disconnect: Callable[[], None]
) -> Callable[[], None] | None:
    """Call `on_disconnect` as soon as the client closes its connection; returns a stop function."""
    if client is None or not gevent_patched():
        return None
    import gevent

    watcher = gevent.spawn(_wait_for_eof, client, on_disconnect)
    return lambda: watcher.kill(block=False)


def _wait_for_eof(client: socket.socket, on_disconnect: Callable[[], None]) -> None:
    from gevent.socket import wait_read

    try:
        # A separate watcher on the fd, so the response's own writes are not disturbed.
        wait_read(client.fileno())
        closed = client.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        closed = True  # reset by the peer, or already closed
    # Data instead of EOF (a pipelined request) tells nothing; the next write will.
    if closed:
        on_disconnect()


def current_greenlet() -> object | None:
    """The running greenlet under gevent, which `interrupt` can stop; None under real threads."""
    if not gevent_patched():
        return None
    import gevent

    return gevent.getcurrent()


def interrupt(greenlet: object) -> None:
    """Raise GreenletExit in `greenlet` wherever it is blocked (asynchronously)."""
    import gevent

    gevent.kill(greenlet)  # schedules GreenletExit; never blocks the caller


def wake_read(greenlet: object, still_due: Callable[[], bool]) -> None:
    """Raise ReadWake in `greenlet`, blocked in a read, if `still_due()` when the hub gets to it.

    From the hub, as gevent's own Timeout does: a greenlet that threw directly into another
    would never be switched back to. The check runs at that moment, not now, because by then the
    read may have returned and the greenlet be blocked in a write, which must not be interrupted.
    """
    import gevent

    def throw() -> None:
        if still_due() and not greenlet.dead:  # type: ignore[attr-defined]
            greenlet.throw(ReadWake())  # type: ignore[attr-defined]

    gevent.get_hub().loop.run_callback(throw)


@functools.cache
def gevent_patched() -> bool:
    """True in a gunicorn gevent worker (patched after fork, before the app is imported)."""
    from gevent import monkey

    return monkey.is_module_patched("socket")


def drain_on_worker_exit(worker: Any, registry: StreamRegistry) -> None:
    """Called from gunicorn's post_worker_init: when the worker is told to exit (SIGTERM),
    let running streams finish within graceful_timeout, then end the rest with
    `done`/`cancelled` so that none is cut off mid-event and every upstream is closed."""

    def watch() -> None:
        while worker.alive:
            time.sleep(0.1)
        # gunicorn checks every second and kills what is left at graceful_timeout: end first.
        deadline = time.monotonic() + max(worker.cfg.graceful_timeout - 1.5, 0)
        if registry:
            log.info("worker exiting: %d streams running", len(registry))
        cancelled = registry.drain(deadline)
        if cancelled:
            log.info("worker exiting: cancelled %d streams", cancelled)

    threading.Thread(target=watch, name="drain-on-exit", daemon=True).start()
