"""The connections a worker holds, and how many each client address may keep waiting.

A connection is *waiting* while the worker waits on its client: for a first request, for the
next one (keep-alive), or for a request's body. It stops waiting once the application has its
request and the response is being written (an answer streaming, a page being sent): those are
bounded by the stream caps and the write timeout, not here. An address that already holds
`max_waiting_per_client` waiting connections gets a new one only in place of its longest idle
keep-alive connection (which a browser reopens when it needs one); without such a connection to
give up, the new one is refused. So one address with thousands of idle, slow or body-less
connections holds a few dozen slots, and everybody else gets the rest.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


class Phase(enum.Enum):
    NEW = "new"  # accepted; its first request's headers are not in yet
    IDLE = "idle"  # answered at least once; waiting for the next request (keep-alive)
    BODY = "body"  # its request's headers are in; the application reads the body
    RESPONDING = "responding"  # the response is being written: not waiting on the client


WAITING = (Phase.NEW, Phase.IDLE, Phase.BODY)


@dataclass(eq=False)
class Connection:
    """One client connection, as the worker's gate sees it."""

    address: str
    # Ends the worker's wait for this client's next request at once (set while it waits): the
    # wait is a `with gevent.Timeout(..., False)` block, which the same Timeout, thrown in,
    # leaves quietly, so the connection closes as after an ordinary keep-alive timeout.
    end_wait: Callable[[], None] | None = None
    phase: Phase = Phase.NEW
    requests: int = 0
    since: float = field(default_factory=time.monotonic)

    @property
    def waiting_for_request(self) -> bool:
        return self.phase in (Phase.NEW, Phase.IDLE) and self.end_wait is not None

    def close_if_waiting_for_request(self) -> bool:
        """Close a connection that waits for a request; one inside a request is left alone."""
        end_wait = self.end_wait if self.waiting_for_request else None
        if end_wait is None:
            return False
        self.end_wait = None
        end_wait()
        return True


class ConnectionGate:
    def __init__(self, max_waiting_per_client: int) -> None:
        self._max_waiting = max_waiting_per_client
        self._connections: set[Connection] = set()
        self._waiting: dict[str, set[Connection]] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def open(self, connection: Connection) -> bool:
        """Count a new connection in, closing its address's longest idle connection if the address
        is at its cap; False (count nothing) if it is at its cap with none to close."""
        waiting = self._waiting.setdefault(connection.address, set())
        if self._max_waiting and len(waiting) >= self._max_waiting:
            idle = [c for c in waiting if c.phase is Phase.IDLE and c.waiting_for_request]
            if not idle:
                if not waiting:
                    del self._waiting[connection.address]
                return False
            oldest = min(idle, key=lambda c: c.since)
            waiting.discard(oldest)
            oldest.close_if_waiting_for_request()
        self._connections.add(connection)
        waiting.add(connection)
        return True

    def request_started(self, connection: Connection) -> None:
        """Its request's headers are in: it waits for the body now, not for a request."""
        connection.requests += 1
        connection.end_wait = None
        self._move(connection, Phase.BODY)

    def responding(self, connection: Connection) -> None:
        self._move(connection, Phase.RESPONDING)

    def request_ended(self, connection: Connection) -> None:
        self._move(connection, Phase.IDLE)

    def close(self, connection: Connection) -> None:
        self._connections.discard(connection)
        self._leave_waiting(connection)

    def waiting_count(self, address: str) -> int:
        return len(self._waiting.get(address, ()))

    def connections(self) -> Iterator[Connection]:
        return iter(list(self._connections))

    def close_all_waiting_for_request(self) -> int:
        """On shutdown: close every connection that waits for a request (idle keep-alive clients,
        new ones that sent nothing); requests being served go on. Returns how many closed."""
        return sum(c.close_if_waiting_for_request() for c in self.connections())

    def _move(self, connection: Connection, phase: Phase) -> None:
        connection.phase = phase
        connection.since = time.monotonic()
        if connection not in self._connections:
            return  # already closed (or never admitted)
        if phase in WAITING:
            self._waiting.setdefault(connection.address, set()).add(connection)
        else:
            self._leave_waiting(connection)

    def _leave_waiting(self, connection: Connection) -> None:
        waiting = self._waiting.get(connection.address)
        if waiting is not None:
            waiting.discard(connection)
            if not waiting:
                del self._waiting[connection.address]


def peer_address(addr: Any) -> str:
    """The client's address as gunicorn hands it over: (host, port) for TCP, a path or '' for a
    unix socket (all of whose clients are one local "address")."""
    if isinstance(addr, tuple) and addr:
        return str(addr[0])
    return "unix"
