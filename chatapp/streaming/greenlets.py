"""The gevent plumbing: everything that reaches into greenlets, the hub or a raw client socket.

Under gunicorn's gevent worker each request is a greenlet and every socket is
cooperative. These helpers let one greenlet act on another: end a helper that
waits for an upstream's headers (`interrupt`), end a read that has no timeout
when its heartbeat is due (`wake_read`, `ReadWake`), and notice at once that a
client closed its connection while nothing is being written to it
(`watch_for_disconnect`), and cut a client that stopped reading (`hang_up`).
Outside gevent (`flask run`, threads) the greenlet helpers do nothing (`hang_up` works
on any socket), and streams notice a gone client on their next write or heartbeat instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

from ..gevent_mode import gevent_patched


class ReadWake(TimeoutError):
    """Raised in a relay's blocking read when the relay has something to do (a heartbeat is due,
    the stream's time is up): the read ends as a read that timed out would."""


def current_greenlet() -> Any | None:
    """The running greenlet under gevent, which `interrupt` can stop; None under real threads."""
    if not gevent_patched():
        return None
    import gevent

    return gevent.getcurrent()


def interrupt(greenlet: Any) -> None:
    """Raise GreenletExit in `greenlet` wherever it is blocked (asynchronously)."""
    import gevent

    gevent.kill(greenlet)  # schedules GreenletExit; never blocks the caller


def wake_read(greenlet: Any, still_due: Callable[[], bool]) -> None:
    """Raise ReadWake in `greenlet`, blocked in a read, if `still_due()` when the hub gets to it.

    From the hub, as gevent's own Timeout does: a greenlet that threw directly into another
    would never be switched back to. The check runs at that moment, not now, because by then the
    read may have returned and the greenlet be blocked in a write, which must not be interrupted.
    """
    import gevent

    def throw() -> None:
        if still_due() and not greenlet.dead:
            greenlet.throw(ReadWake())

    gevent.get_hub().loop.run_callback(throw)


def watch_for_disconnect(
    client: socket.socket | None, on_disconnect: Callable[[], None]
) -> Callable[[], None] | None:
    """Call `on_disconnect` as soon as the client closes its connection; returns a stop function.

    A generator view only learns that the client left on its next write, and while the model
    is silent nothing is written; a greenlet that waits until the socket is readable and peeks
    sees the close at once, so the upstream request is ended at once too.
    """
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


def hang_up(sock: socket.socket) -> None:
    """Shut a client's connection down under the greenlet that is blocked writing to it, which
    then fails as on any closed connection (EPIPE), and gunicorn closes it quietly.

    Not with the socket's own `shutdown()`: gevent's cancels the waiting greenlet's wait with
    EBADF ("File descriptor was closed in another greenlet"), which gunicorn logs as an error
    with a traceback. A duplicate descriptor shuts the same connection down without that.
    """
    try:
        duplicate = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return  # already closed
    with duplicate, contextlib.suppress(OSError):
        duplicate.shutdown(socket.SHUT_RDWR)
