"""The write timeout, under real gunicorn: it runs from the last byte the client took, so a client
that keeps reading keeps its stream however long one write waits, and only one that takes nothing
is cut.

Regression pinned: a client reading slowly was cut after about the write timeout (`docs/api.md`
promised that only a client that "accepts no bytes" for that long is), because the timer ran from
the start of a write that the slow reader's full buffers kept waiting.

What "took a byte" means here is what the sending kernel can know: the bytes the client's TCP
acknowledged (chatapp/delivery.py). A client whose own socket buffer is full and whose program
reads a few bytes a second opens its window rarely, and Linux then learns of it only from
zero-window probes, backed off to 20-40 s apart (measured for 64 bytes/s on loopback); the test's
slow reader takes 2 KB a second through a minimal receive buffer, which Linux acknowledges about
once a second, while every write to it waits far longer than the write timeout.
"""

from __future__ import annotations

import json
import socket
import threading
import time

from tests.support.fake_upstream import Behaviour
from tests.support.sse_client import ask

WRITE_TIMEOUT_S = 4.0
WATCHED_FOR_S = 3 * WRITE_TIMEOUT_S
READ_SIZE = 512  # bytes per read, 4 reads a second: 2 KB/s


def open_stream(port: int, model: str, *, receive_buffer: int) -> socket.socket:
    """`POST /api/chat` on a raw socket with a small receive buffer, so that the server's writes
    wait on this client soon."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    client.connect(("127.0.0.1", port))
    body = json.dumps(ask(model)).encode()
    client.sendall(
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return client


class SlowReader:
    """Reads READ_SIZE bytes every quarter of a second, noting when each read returned."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.arrivals: list[float] = []
        self.closed_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.sock.settimeout(1.0)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(READ_SIZE)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed_at = time.monotonic()
                return
            self.arrivals.append(time.monotonic())
            time.sleep(0.25)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_a_slow_reader_is_not_cut_and_one_that_reads_nothing_is(chatapp_server, upstream):
    app = chatapp_server(upstream, CHATAPP_WRITE_TIMEOUT_S=str(WRITE_TIMEOUT_S))
    # Far more than any socket buffer holds, as fast as the upstream can send it.
    model = upstream.model(Behaviour(tokens=tuple("x" * 200 for _ in range(50_000))))
    stuck = open_stream(app.port, model, receive_buffer=4096)  # never reads
    slow = SlowReader(open_stream(app.port, model, receive_buffer=1024))
    started = time.monotonic()
    try:
        upstream.wait_for_request(model)
        time.sleep(WATCHED_FOR_S)
        records = upstream.requests_for(model)
        assert len(records) == 2
        ended = [r for r in records if r.ended.is_set()]
        assert len(ended) == 1, "expected exactly the stuck client's stream to be cut"
        assert ended[0].outcome == "client_closed"
        assert ended[0].ended_at - started < WRITE_TIMEOUT_S + 3
        assert slow.closed_at is None, f"the slow reader was cut after {slow.closed_at - started:.1f} s"
        assert slow.arrivals[-1] > time.monotonic() - 2, "the slow reader stopped receiving"
        assert len(slow.arrivals) > WATCHED_FOR_S * 3  # it read all along, 4 reads a second
    finally:
        stuck.close()
        slow.stop()
    assert "cause=write_timeout" in app.output()
    assert "Traceback" not in app.output()
