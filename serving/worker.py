"""chatapp's gunicorn worker: gunicorn's gevent worker, with its connections bounded.

What it adds to `gunicorn.workers.ggevent.GeventWorker` (gunicorn.conf.py names it):
- a new connection has `header_timeout_s` to send its request's headers (gunicorn's own wait is
  the keep-alive time, 75 s, even for a connection that never sent anything);
- a request body must keep arriving (`BodyClock`): 408 otherwise, and the connection closes;
- one client address keeps at most `max_waiting_per_client` connections waiting (`ConnectionGate`);
  over that, a new connection gets `429 too_many_connections` and is closed;
- on SIGTERM or a reload (SIGHUP), connections that wait for a request are closed at once, so the
  worker exits as soon as its answers end instead of waiting graceful_timeout on idle keep-alive
  clients, and without a traceback for each of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker

from .body_clock import BodyClock
from .connection_limits import ConnectionLimits
from .connections import Connection, ConnectionGate, Phase, peer_address

TOO_MANY_CONNECTIONS = "too_many_connections"

_REFUSAL_BODY = json.dumps(
    {
        "error": {
            "code": TOO_MANY_CONNECTIONS,
            "message": "Too many connections from your address are waiting. Close some, then try again.",
        }
    }
).encode()
REFUSAL = (
    b"HTTP/1.1 429 Too Many Requests\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n\r\n" % len(_REFUSAL_BODY)
) + _REFUSAL_BODY

# Refusals are logged at most this often per worker (one abusive client can cause thousands).
REFUSAL_LOG_INTERVAL_S = 10.0
# How often a worker that was told to exit looks again for connections to close.
SHUTDOWN_SWEEP_S = 0.1
# Once told to exit, how long a connection is given to send the request it may be sending.
EXITING_WAIT_S = 0.1


class ChatappWorker(GeventWorker):
    # gunicorn.conf.py's post_worker_init sets the operator's limits before the worker runs.
    limits = ConnectionLimits()
    wsgi: Any  # the application; gunicorn loads it in init_process

    def run(self) -> None:
        self.gate = ConnectionGate(self.limits.max_waiting_per_client)
        self._connection_of: dict[Any, Connection] = {}
        self._refused = 0
        self._refusals_logged_at = float("-inf")
        self._application: Any = self.wsgi
        self.wsgi = self._answer
        gevent.spawn(self._close_waiting_on_exit)
        super().run()

    # -- the connection's life ---------------------------------------------------------------

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        connection = Connection(peer_address(addr))
        if not self.gate.open(connection):
            self._refuse(client, connection)
            return
        greenlet = gevent.getcurrent()
        self._connection_of[greenlet] = connection
        try:
            super().handle(listener, client, addr)
        finally:
            del self._connection_of[greenlet]
            self.gate.close(connection)

    def timeout_ctx(self) -> Any:
        """The wait for a connection's next request (gunicorn enters it around the header read):
        `header_timeout_s` for a new connection, the keep-alive time after a response, and only
        a moment once the worker is exiting (a request already on its way is still served)."""
        connection = self._connection_of[gevent.getcurrent()]
        if not self.alive:
            return gevent.Timeout(EXITING_WAIT_S, False)
        seconds = self.limits.header_timeout_s if connection.requests == 0 else self.cfg.keepalive
        timer = gevent.Timeout(seconds, False)
        connection.end_wait = _ender(gevent.getcurrent(), connection, timer)
        return timer

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        connection = self._connection_of[gevent.getcurrent()]
        self.gate.request_started(connection)
        unreader = req.unreader
        unreader.sock = BodyClock(sock, self.limits.body_idle_s, self.limits.body_timeout_s)
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            unreader.sock = sock
            self.gate.request_ended(connection)

    def handle_http2(self, listener: Any, client: Any, addr: Any, *args: Any, **kwargs: Any) -> None:
        # An HTTP/2 connection multiplexes requests; it is served, not waiting, from here on.
        self.gate.responding(self._connection_of[gevent.getcurrent()])
        super().handle_http2(listener, client, addr, *args, **kwargs)

    def _answer(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The application, which returns once it has read the request and has its response:
        from then on the connection is being answered, not waiting on its client."""
        try:
            return self._application(environ, start_response)
        finally:
            connection = self._connection_of.get(gevent.getcurrent())
            if connection is not None:
                self.gate.responding(connection)

    # -- refusing and closing ----------------------------------------------------------------

    def _refuse(self, client: Any, connection: Connection) -> None:
        try:
            client.setblocking(False)  # a new socket's send buffer is empty: this never waits
            client.send(REFUSAL)
        except OSError:
            pass
        finally:
            client.close()
        self._refused += 1
        now = time.monotonic()
        if now - self._refusals_logged_at >= REFUSAL_LOG_INTERVAL_S:
            self.log.warning(
                "refused %d connection(s) (last from %s): %d connections from one address were "
                "waiting (CHATAPP_MAX_WAITING_CONNECTIONS_PER_CLIENT)",
                self._refused,
                connection.address,
                self.gate.waiting_count(connection.address),
            )
            self._refused = 0
            self._refusals_logged_at = now

    def _close_waiting_on_exit(self) -> None:
        """Once told to exit: close idle keep-alive connections (and new ones that sent nothing)
        now and whenever another one goes idle, so that only running answers are waited for."""
        while self.alive:
            gevent.sleep(SHUTDOWN_SWEEP_S)
        while True:
            closed = self.gate.close_all_waiting_for_request()
            if closed:
                self.log.debug("worker exiting: closed %d idle connections", closed)
            gevent.sleep(SHUTDOWN_SWEEP_S)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if req is None and isinstance(exc, gevent.GreenletExit):
            # gunicorn ends the greenlets left at graceful_timeout so; nothing was asked of them.
            self.log.debug("closed a connection with no request at exit")
            return
        super().handle_error(req, client, addr, exc)


def _ender(greenlet: Any, connection: Connection, timer: Any) -> Callable[[], None]:
    """Ends `connection`'s wait for a request as its own timer would: by throwing that timer into
    the greenlet, from the hub, which the `with timer` block around the wait swallows (gunicorn
    then closes the connection as after a keep-alive timeout). Checked when the hub gets to it:
    by then the greenlet may have its request, and must not be interrupted while serving it."""
    requests = connection.requests

    def throw() -> None:
        still_waiting = connection.requests == requests and connection.phase in (Phase.NEW, Phase.IDLE)
        if still_waiting and not greenlet.dead:
            greenlet.throw(timer)

    def end_wait() -> None:
        gevent.get_hub().loop.run_callback(throw)

    return end_wait
