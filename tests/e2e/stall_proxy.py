"""A TCP proxy between the browser and chatapp that can break the connections carrying an event stream.

`freeze_streams()` stalls them: they stay open and not one more byte reaches the browser, as a
dead network path leaves a connection (no error, no end, not even a heartbeat); only a client
that notices the silence gets out. `cut_streams()` closes them abruptly, as a dropped network
does. Connections made afterwards pass as usual. Chromium's offline emulation can do neither:
it fails new requests but leaves established streams flowing.

Every request's head is recorded (`requests`), so a test can see what the browser sent
(an EventSource's `Last-Event-ID`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

from harness.processes import free_port


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    streaming: bool = False  # the last response head on it was `text/event-stream`
    frozen: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class StallProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.requests: list[tuple[str, dict[str, str]]] = []  # request line, headers (names in lower case)
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept, name="stall-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StallProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def freeze_streams(self) -> int:
        """Stop passing bytes to the browser on every open event stream; how many were frozen."""
        return self._each_stream(lambda link: link.frozen.set())

    def cut_streams(self) -> int:
        """Close every open event stream's connection at once; how many were cut."""
        return self._each_stream(_Link.close)

    def _each_stream(self, action) -> int:
        with self._lock:
            streams = [link for link in self._links if link.streaming and not link.closed.is_set()]
        for link in streams:
            action(link)
        return len(streams)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, server)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._upstream, args=(link,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), daemon=True).start()

    def _upstream(self, link: _Link) -> None:
        """Browser to chatapp, recording request heads; the browser closing closes the link."""
        try:
            while data := link.client.recv(65536):
                self._record(data)
                link.server.sendall(data)
        except OSError:
            pass
        link.close()

    def _downstream(self, link: _Link) -> None:
        """chatapp to the browser, until the link is frozen: then its bytes are held until it closes."""
        try:
            while data := link.server.recv(65536):
                head = data.rfind(b"HTTP/1.1 ")
                if head != -1:
                    link.streaming = b"text/event-stream" in data[head:].split(b"\r\n\r\n", 1)[0].lower()
                if link.frozen.is_set():
                    link.closed.wait()
                    return
                link.client.sendall(data)
        except OSError:
            pass
        link.close()

    def _record(self, data: bytes) -> None:
        # A request's head comes in one read here (the browser writes it at once); bodies are skipped.
        text = data.decode("latin-1")
        if not text[:8].split(" ", 1)[0].isupper() or "\r\n\r\n" not in text:
            return
        line, *fields = text.split("\r\n\r\n", 1)[0].split("\r\n")
        headers = {}
        for entry in fields:
            name, _, value = entry.partition(":")
            headers[name.strip().lower()] = value.strip()
        with self._lock:
            self.requests.append((line, headers))
