"""Clients that hold a server's connections without asking for an answer, as an attacker (or a
broken client) would: many connections from one loopback address that stay idle, send their
headers a byte at a time (slowloris), or announce a body that never comes.

Used by the connection-limit tests and the abuse soak (bench/abuse.py); bounded in count and in
time (`stop()`), and 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["idle", "slowloris", "bodyless"]
KINDS: tuple[Kind, ...] = ("idle", "slowloris", "bodyless")
# Answers' bodies kept for a look (a soak gets hundreds of thousands of the same few).
KEPT_BODIES = 20

# A request whose headers never end: after the first line, one more header byte a second.
SLOWLORIS_START = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
# The headers of a POST that promises 1000 bytes of body and sends none.
BODYLESS = (
    b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n"
)


@dataclass(eq=False)
class _Held:
    sock: socket.socket
    opened_at: float
    received: bytes = b""


@dataclass
class AbuseStats:
    opened: int = 0  # connections made
    failed: int = 0  # connects that failed (refused, timed out)
    closed_by_server: int = 0
    # The status line of each answer the server sent before closing ("429", "408", ...).
    answers: Counter[str] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)  # the first KEPT_BODIES
    # How long connections the server closed had been open, in seconds.
    lifetimes: list[float] = field(default_factory=list)


class Abusers:
    """`count` abusive connections of one `kind` to 127.0.0.1:`port`, from `address`.

    With `keep_open`, a connection the server closes is replaced within `reopen_s`, so the server
    keeps facing `count` of them until `stop()`; otherwise each is opened once."""

    def __init__(
        self,
        port: int,
        kind: Kind,
        count: int = 2000,
        *,
        address: str = "127.0.0.1",
        keep_open: bool = False,
        reopen_s: float = 0.25,
    ) -> None:
        self.port = port
        self.kind = kind
        self.count = count
        self.address = address
        self.keep_open = keep_open
        self.reopen_s = reopen_s
        self.stats = AbuseStats()
        self._held: dict[socket.socket, _Held] = {}
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Abusers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._open_up_to_count()
        self._thread = threading.Thread(target=self._run, name=f"abusers-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for held in list(self._held.values()):
            self._forget(held)
        self._selector.close()

    def held(self) -> int:
        """Connections the server has not closed (nor answered) yet."""
        with self._lock:
            return sum(1 for h in self._held.values() if not h.received)

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        next_byte = time.monotonic() + 1.0
        next_reopen = time.monotonic() + self.reopen_s
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                self._receive(self._held[key.fileobj])  # type: ignore[index]
            now = time.monotonic()
            if self.kind == "slowloris" and now >= next_byte:
                self._send_to_all(b"a")
                next_byte = now + 1.0
            if self.keep_open and now >= next_reopen:
                self._open_up_to_count()
                next_reopen = now + self.reopen_s

    def _open_up_to_count(self) -> None:
        while len(self._held) < self.count and not self._stop.is_set():
            try:
                sock = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=2, source_address=(self.address, 0)
                )
            except OSError:
                self.stats.failed += 1
                return
            self.stats.opened += 1
            if self.kind == "slowloris":
                self._send(sock, SLOWLORIS_START)
            elif self.kind == "bodyless":
                self._send(sock, BODYLESS)
            sock.setblocking(False)
            held = _Held(sock, time.monotonic())
            with self._lock:
                self._held[sock] = held
            self._selector.register(sock, selectors.EVENT_READ)

    def _receive(self, held: _Held) -> None:
        try:
            data = held.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            with self._lock:
                held.received += data
            return
        self.stats.closed_by_server += 1
        self.stats.lifetimes.append(time.monotonic() - held.opened_at)
        if held.received:
            self.stats.answers[held.received.split(b" ", 2)[1].decode()] += 1
            if len(self.stats.bodies) < KEPT_BODIES:
                self.stats.bodies.append(held.received.partition(b"\r\n\r\n")[2])
        self._forget(held)

    def _send_to_all(self, data: bytes) -> None:
        for held in list(self._held.values()):
            if not held.received:
                self._send(held.sock, data)

    @staticmethod
    def _send(sock: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):  # closed by the server: the selector reports it
            sock.send(data)

    def _forget(self, held: _Held) -> None:
        with self._lock:
            self._held.pop(held.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(held.sock)
        held.sock.close()
