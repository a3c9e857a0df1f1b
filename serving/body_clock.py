"""A request body that must keep arriving: 408 for one that pauses too long or drips too slowly.

gunicorn hands the application a body that reads the client's socket with no timeout, so a
request whose body never comes holds its connection (and its worker slot) for ever. The worker
puts a `BodyClock` between gunicorn's reader and the socket for as long as the application
handles the request.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from werkzeug.exceptions import RequestTimeout

MESSAGE = "The request body did not arrive in time."


class BodyClock:
    """Stands in for the client socket where gunicorn reads a request's body from (its unreader
    calls only `recv`): each read waits at most `idle_s`, all of them together `total_s`.

    Running out raises werkzeug's `RequestTimeout`, which the application answers as its 408 (and
    gunicorn, having seen the body fail, closes the connection afterwards rather than look for
    another request in the rest of it)."""

    def __init__(self, sock: Any, idle_s: float, total_s: float) -> None:
        self._sock = sock
        self._idle_s = idle_s
        self._deadline = time.monotonic() + total_s

    def recv(self, size: int) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(MESSAGE)
        self._sock.settimeout(min(self._idle_s, remaining))
        try:
            data: bytes = self._sock.recv(size)
            return data
        except TimeoutError:
            raise RequestTimeout(MESSAGE) from None
        finally:
            # Closed meanwhile: gunicorn finds out on its next use.
            with contextlib.suppress(OSError):
                self._sock.settimeout(None)
