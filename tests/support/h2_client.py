"""An HTTP/2 client driven frame by frame, for what httpx cannot do: reset one stream (RST_STREAM
CANCEL, what a browser sends when a page aborts its fetch) while the connection stays open, or
drop the whole connection in the middle of a response (a closed laptop lid)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events


class H2Client:
    """One TLS connection with ALPN "h2" to `host:port`; requests are sent, then read by stream id."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, timeout: float = 10.0) -> None:
        context.set_alpn_protocols(["h2"])
        self.authority = f"{host}:{port}"
        self._sock = context.wrap_socket(
            socket.create_connection((host, port), timeout), server_hostname=host
        )
        if self._sock.selected_alpn_protocol() != "h2":
            raise RuntimeError(f"the server did not agree to HTTP/2: {self._sock.selected_alpn_protocol()}")
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._h2.initiate_connection()
        self._flush()
        self.status: dict[int, int] = {}
        self.headers: dict[int, dict[str, str]] = {}
        self.body: dict[int, bytes] = {}
        self.ended: set[int] = set()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> int:
        """Send a request; its stream id."""
        stream_id = self._h2.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "https"), (":authority", self.authority), (":path", path)]
        fields += [(k.lower(), v) for k, v in (headers or {}).items()]
        if body:
            fields.append(("content-length", str(len(body))))
        self._h2.send_headers(stream_id, fields, end_stream=not body)
        if body:
            self._h2.send_data(stream_id, body, end_stream=True)
        self._flush()
        self.body[stream_id] = b""
        return stream_id

    def read_until(self, stream_id: int, condition: Callable[[bytes], bool], timeout: float = 10.0) -> bytes:
        """Read frames until `condition(body so far)` holds for `stream_id`, or the stream ends."""
        deadline = time.monotonic() + timeout
        while not condition(self.body[stream_id]) and stream_id not in self.ended:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {stream_id}: condition not met in {timeout} s")
            self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            for event in self._h2.receive_data(data):
                self._on(event)
            self._flush()
        return self.body[stream_id]

    def read_to_end(self, stream_id: int, timeout: float = 10.0) -> bytes:
        return self.read_until(stream_id, lambda _: False, timeout)

    def reset(self, stream_id: int) -> None:
        """Cancel one stream, as a browser's AbortController does; the connection stays open."""
        self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self._flush()

    def close(self) -> None:
        """Drop the connection, every stream on it, without a goodbye (no GOAWAY)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            fields = {name.decode(): value.decode() for name, value in event.headers}
            self.status[event.stream_id] = int(fields[":status"])
            self.headers[event.stream_id] = fields
        elif isinstance(event, h2.events.DataReceived):
            self.body[event.stream_id] = self.body.get(event.stream_id, b"") + event.data
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
            self.ended.add(event.stream_id)

    def _flush(self) -> None:
        self._sock.sendall(self._h2.data_to_send())
