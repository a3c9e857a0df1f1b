"""The live streams of this worker process: the registry, and the sweeper.

- The registry maps stream id -> stream, so that `POST /api/chat/<id>/stop`
  can cancel it and a shutting-down worker can end what is left (`drain`).
- The sweeper, a greenlet started with the first stream, cuts clients that
  stopped reading, and wakes relays blocked in a read with no timeout when
  their heartbeat or deadline is due (`greenlets.wake_read`).
"""

from __future__ import annotations

import logging
import threading
import time
from enum import StrEnum
from typing import Protocol

from ..gevent_mode import gevent_patched

log = logging.getLogger(__name__)


class LiveStream(Protocol):
    """What the registry holds for a running stream: a relay, or what runs one (an answer job)."""

    @property
    def stream_id(self) -> str: ...

    def cancel(self, cause: Cause) -> None: ...

    def write_stalled_s(self, now: float) -> float: ...

    def hang_up(self) -> None: ...

    def wake_if_due(self, now: float) -> None: ...


class Cause(StrEnum):
    """Why a stream was cancelled, for the log line."""

    STOPPED = "stopped"  # POST /api/chat/<id>/stop
    CLIENT_GONE = "client_gone"  # the connection closed
    WRITE_TIMEOUT = "write_timeout"  # the client stopped reading
    SHUTDOWN = "shutdown"  # the worker is exiting
    MAX_DURATION = "max_duration"  # CHATAPP_MAX_STREAM_S ran out (reported as an error)
    UNREAD = "unread"  # nobody read a stored answer for CHATAPP_DETACHED_MAX_S


class Announcer(Protocol):
    """Told when a stream starts and ends in this process (the coordinator, for other processes)."""

    def running(self, stream_id: str) -> None: ...

    def finished(self, stream_id: str) -> None: ...


class Reader(Protocol):
    """A connection following a stream it does not run (a reattached reader): cut when it stops
    reading, as a stream's own client is."""

    def write_stalled_s(self, now: float) -> float: ...

    def hang_up(self) -> None: ...


class StreamRegistry:
    def __init__(self, write_timeout_s: float, tick_s: float = 1.0) -> None:
        self._streams: dict[str, LiveStream] = {}
        self._write_timeout_s = write_timeout_s
        # How often the sweeper looks at every stream: the precision of write timeouts, and of
        # heartbeats and deadlines for relays whose reads it wakes.
        self._tick_s = tick_s
        self._sweeper: threading.Thread | None = None
        self._readers: set[Reader] = set()
        self.announcer: Announcer | None = None

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: LiveStream) -> None:
        self._streams[stream.stream_id] = stream
        self._start_sweeping()
        if self.announcer is not None:
            self.announcer.running(stream.stream_id)

    def remove(self, stream: LiveStream) -> None:
        if self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]
            if self.announcer is not None:
                self.announcer.finished(stream.stream_id)

    def add_reader(self, reader: Reader) -> None:
        self._readers.add(reader)
        self._start_sweeping()

    def remove_reader(self, reader: Reader) -> None:
        self._readers.discard(reader)

    def _start_sweeping(self) -> None:
        if self._sweeper is None:
            # Started on first use, so that under gunicorn it is a greenlet of the worker.
            self._sweeper = threading.Thread(target=self._sweep, name="stream-sweeper", daemon=True)
            self._sweeper.start()

    def is_running(self, stream_id: str) -> bool:
        return stream_id in self._streams

    def cancel(self, stream_id: str, cause: Cause = Cause.STOPPED) -> bool:
        """Cancel a running stream; False when no stream with that id runs in this process."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return False
        stream.cancel(cause)
        return True

    def cancel_all(self, cause: Cause) -> int:
        streams = list(self._streams.values())
        for stream in streams:
            stream.cancel(cause)
        return len(streams)

    def drain(self, deadline: float) -> int:
        """Let running streams finish until `deadline` (monotonic), then cancel the rest. Returns
        how many were cancelled. (Close the admission first, or new ones keep coming.)"""
        while self._streams and time.monotonic() < deadline:
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
        return self.cancel_all(Cause.SHUTDOWN)

    @property
    def wakes_reads(self) -> bool:
        """True when the sweeper can wake relays blocked in a read (gevent), so that they can read
        without a timeout: a gevent `Timeout` per read costs more than the rest of the read."""
        return gevent_patched()

    def _sweep(self) -> None:
        """Hang up on clients that have taken no byte for the write timeout (delivery.py: a slow
        reader is not cut); wake relays whose heartbeat or deadline is due."""
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
            for reader in list(self._readers):
                if reader.write_stalled_s(now) > self._write_timeout_s:
                    log.info("a reader stopped reading; hanging up")
                    reader.hang_up()
