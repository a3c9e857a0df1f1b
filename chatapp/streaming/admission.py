"""Whether a new stream may start: this process's caps, then the caps every process shares.

`Admission` counts the streams this worker holds, in all (`CHATAPP_MAX_STREAMS_PER_WORKER`) and per
client (`CHATAPP_MAX_STREAMS_PER_CLIENT`), and refuses every new one once the worker drains before it
exits. `admitted()` takes a stream in here and across processes (the coordinator's count) as one
step, and gives both back if the request fails before its stream starts. A refusal is a typed
`Refused`; errors.py says it to the client (503 or 429).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

# Gives back what an admission took; called once when the stream's response closes (more calls do
# nothing).
Release = Callable[[], None]


class Refused(Exception):
    """A new stream was not admitted."""


class ShuttingDown(Refused):
    """The worker is draining its streams before it exits."""


class WorkerFull(Refused):
    """This worker holds as many streams as it may (CHATAPP_MAX_STREAMS_PER_WORKER)."""


class ClientBusy(Refused):
    """This client has as many streams open as it may (CHATAPP_MAX_STREAMS_PER_CLIENT)."""


class SharedAdmission(Protocol):
    """The count that every process shares (coordination/): `admit` raises `ClientBusy` at the cap."""

    def admit(self, client: str) -> Release: ...


class Admission:
    """This worker's count of admitted streams (0: no cap)."""

    def __init__(self, max_streams: int = 0, max_per_client: int = 0) -> None:
        self._max_streams = max_streams
        self._max_per_client = max_per_client
        self._admitted = 0
        self._per_client: Counter[str] = Counter()
        self.closed = False

    def close(self) -> None:
        """Admit nothing more: the worker is about to exit."""
        self.closed = True

    def admit(self, client: str) -> Release:
        """Count a new stream in, or refuse it: a full worker sheds load rather than slowing every
        stream it holds."""
        if self.closed:
            raise ShuttingDown
        if self._max_streams and self._admitted >= self._max_streams:
            raise WorkerFull
        if self._max_per_client and self._per_client[client] >= self._max_per_client:
            raise ClientBusy
        self._admitted += 1
        self._per_client[client] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._admitted -= 1
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]

        return release


@contextmanager
def admitted(local: Admission, shared: SharedAdmission, client: str) -> Iterator[Release]:
    """Admit one stream for `client` here and everywhere, or raise `Refused`: before the request's
    body is read, the cheapest moment to refuse. If the block raises, the admission is given back;
    if it returns, the release it got belongs to the stream's response, which calls it at its end."""
    here = local.admit(client)
    try:
        everywhere = shared.admit(client)
    except BaseException:
        here()
        raise

    def release() -> None:
        everywhere()
        here()

    try:
        yield release
    except BaseException:
        release()
        raise
