"""The write timeout, under real gunicorn: it runs from the last byte the client took, so a client
that keeps reading keeps its stream however long one write waits, and only one that takes nothing
is cut.

Regression pinned: a client reading 64 bytes a second was cut after about the write timeout
(`docs/api.md` promised that only a client that "accepts no bytes" for that long is), because the
timer ran from the start of a write that the slow reader's full buffers kept waiting.

What "took a byte" means here is what the sending kernel can know: the bytes the client's TCP
acknowledged (chatapp/delivery.py). A TCP receiver opens a full window again only once enough of
it is free, so how often a slow reader's progress shows depends on its receive buffer: through a
minimal one (as here) 64 bytes a second is acknowledged about every 9 s on Linux loopback; a
program reading 64 bytes a second from a default-sized full buffer may show nothing for a minute
(docs/api.md says so). Every write to these readers waits far longer than the write timeout.
"""

from __future__ import annotations

import json
import socket
import threading
import time

from tests.support.fake_upstream import Behaviour
from tests.support.sse_client import ask

WRITE_TIMEOUT_S = 20.0  # over twice the 9 s between a 64 bytes/s reader's acknowledgements
WATCHED_FOR_S = 45.0
MINIMAL_RECEIVE_BUFFER = 1  # the kernel rounds it up to its minimum


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
    """Reads `bytes_per_s` a second, a quarter of it every quarter of a second."""

    def __init__(self, sock: socket.socket, bytes_per_s: int) -> None:
        self.sock = sock
        self.read_size = bytes_per_s // 4
        self.received = 0
        self.closed_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.sock.settimeout(1.0)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(self.read_size)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed_at = time.monotonic()
                return
            self.received += len(data)
            time.sleep(0.25)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_slow_readers_are_not_cut_and_one_that_reads_nothing_is(chatapp_server, upstream):
    app = chatapp_server(upstream, CHATAPP_WRITE_TIMEOUT_S=str(WRITE_TIMEOUT_S))
    # Far more than any socket buffer holds, as fast as the upstream can send it.
    model = upstream.model(Behaviour(tokens=tuple("x" * 200 for _ in range(50_000))))
    stuck = open_stream(app.port, model, receive_buffer=4096)  # never reads
    slow_readers = {
        rate: SlowReader(open_stream(app.port, model, receive_buffer=MINIMAL_RECEIVE_BUFFER), rate)
        for rate in (64, 2048)
    }
    started = time.monotonic()
    try:
        upstream.wait_for_request(model)
        time.sleep(WATCHED_FOR_S)
        watched_s = time.monotonic() - started
        records = upstream.requests_for(model)
        assert len(records) == 3
        ended = [r for r in records if r.ended.is_set()]
        assert len(ended) == 1, "expected exactly the stuck client's stream to be cut"
        assert ended[0].outcome == "client_closed"
        assert ended[0].ended_at - started < WRITE_TIMEOUT_S + 3
        for rate, reader in slow_readers.items():
            assert reader.closed_at is None, (
                f"the {rate} bytes/s reader was cut after {reader.closed_at - started:.1f} s"
            )
            # It read all along: the stream never left it waiting for long.
            assert reader.received > 0.5 * rate * watched_s, (rate, reader.received)
    finally:
        stuck.close()
        for reader in slow_readers.values():
            reader.stop()
    assert "cause=write_timeout" in app.output()
    assert "Traceback" not in app.output()
