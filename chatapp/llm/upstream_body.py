"""The upstream response body, taken over from httpx: THE one module that touches httpx, httpcore and
h11 internals (private attributes, h11's state); nothing else in chatapp may.

httpx (via the SDK) sends the request and parses the status and headers; for
the body of a stream it is the most expensive part of the relay: ten layers of
generators, httpcore's locks and exception mapping and h11's state machine cost
about 50 µs of CPU per token, several times what the rest of the relay does
(docs/performance.md). `SocketBody` takes the body over: it reads the
connection's socket itself and undoes the chunked transfer coding with
`ChunkedTransferDecoder` (transfer_decoding.py), about 1 µs per chunk. A read
can also time out and be tried again, which an httpx byte iterator cannot:
that is what lets one greenlet read the model and send heartbeats between reads.

The surprise worth naming: taking over means reaching past httpx's public API,
to httpcore's connection and its h11 state (the bytes h11 already received with
the headers, and, at the end, telling h11 the body was read so that the
connection goes back to the pool for the next request). `SocketBody.take`
checks every step and answers None when anything is not as expected (another
httpx version, HTTP/2, a proxy tunnel, a compressed or unchunked body);
`take_body` then uses `ThreadedBody`, httpx's own iterator in a helper thread,
which is slower but reads anything httpx can.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from typing import Any, Protocol

import h11
import httpx2

from .transfer_decoding import ChunkedTransferDecoder, ProtocolError

READ_SIZE = 64 * 1024
MAX_QUEUED_READS = 64


class UpstreamBody(Protocol):
    """A response body read with a timeout per read."""

    @property
    def finished(self) -> bool: ...

    def read(self, timeout: float | None) -> bytes:
        """Body data that arrives within `timeout` s, None: however long it takes (b"" if only
        framing did); TimeoutError if nothing did; ProtocolError, another OSError or an httpx
        error when the connection breaks; b"" once `finished`."""
        ...

    def release(self) -> None:
        """Give the connection back: to the pool when the body was read to its end, else closed."""
        ...

    def abort(self) -> None:
        """From another greenlet or thread: end a read blocked on the connection now."""
        ...


def take_body(response: httpx2.Response) -> UpstreamBody:
    """The body of a response whose headers httpx has read: from its socket when it can be."""
    return SocketBody.take(response) or ThreadedBody(response)


class SocketBody:
    """A chunked response body read from its connection's socket (see the module docstring)."""

    def __init__(self, response: httpx2.Response, sock: socket.socket, h11_state: h11.Connection) -> None:
        self._response = response
        self._sock = sock
        self._h11 = h11_state
        # What h11 read with the headers is the start of the body: decode it first.
        self._pending, _closed = h11_state.trailing_data
        self._decoder = ChunkedTransferDecoder(parser_has=len(self._pending))
        self._released = False
        self._timeout: float | None = -1.0  # the socket's, as this body last set it (-1: not yet)

    @classmethod
    def take(cls, response: httpx2.Response) -> SocketBody | None:
        """Take over the body of a response whose headers httpx has read, or None if it cannot be."""
        headers = response.headers
        if response.http_version != "HTTP/1.1" or "chunked" not in headers.get("transfer-encoding", ""):
            return None
        if headers.get("content-encoding", "identity") != "identity":
            return None  # compressed: httpx's decoders are needed
        try:
            # httpx Response -> httpx's ResponseStream -> httpcore's PoolByteStream -> its
            # HTTP11ConnectionByteStream -> the HTTP11Connection, whose h11 state holds the
            # bytes received after the headers.
            stream: Any = response.stream
            connection = stream._stream._httpcore_stream._stream._connection
            h11_state = connection._h11_state
            sock = response.extensions["network_stream"]._sock
        except (AttributeError, KeyError):
            return None
        if not isinstance(h11_state, h11.Connection) or h11_state.their_state is not h11.SEND_BODY:
            return None
        if not isinstance(sock, socket.socket):
            return None  # e.g. TLS inside a proxy tunnel, which has no single socket
        return cls(response, sock, h11_state)

    @property
    def finished(self) -> bool:
        return self._decoder.finished

    def read(self, timeout: float | None) -> bytes:
        if self._decoder.finished:
            return b""
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            if timeout != self._timeout:  # (under gevent it is None for every read: set it once)
                self._sock.settimeout(timeout)
                self._timeout = timeout
            data = self._sock.recv(READ_SIZE)
            if not data:
                raise ProtocolError("the connection closed in the middle of the body")
        return self._decoder.feed(data)

    def release(self) -> None:
        self._released = True
        if self._decoder.finished:
            finish_h11(self._h11, self._decoder.completion())
        # httpcore keeps the connection when h11 reached the end of both messages, else closes it.
        self._response.close()

    def abort(self) -> None:
        if self._released:
            return  # the connection is the pool's now, maybe serving another request
        self._released = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._response.close()


def finish_h11(h11_state: h11.Connection, completion: bytes) -> bool:
    """Take h11 to the end of the response it holds the start of; True when it got there."""
    try:
        if completion:  # (receive_data(b"") would tell h11 that the connection closed)
            h11_state.receive_data(completion)
        while type(event := h11_state.next_event()) is h11.Data:
            pass
    except h11.ProtocolError:
        return False
    return type(event) is h11.EndOfMessage


_END = object()


class ThreadedBody:
    """Any body httpx can read, through its byte iterator in a helper thread (a greenlet under
    gevent), handed over through a bounded queue so that reads can time out."""

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response
        self._reads: queue.Queue[object] = queue.Queue(MAX_QUEUED_READS)
        self.finished = False
        self._aborted = False
        threading.Thread(target=self._pump, name="upstream-body", daemon=True).start()

    def read(self, timeout: float | None) -> bytes:
        if self.finished:
            return b""
        try:
            item = self._reads.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if item is _END:
            self.finished = True
            return b""
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    def release(self) -> None:
        self.abort()

    def abort(self) -> None:
        self._aborted = True
        self._response.close()
        # Empty the queue, so that a pump blocked on a full one can go on (and see it was
        # aborted), then wake a reader blocked on an empty one.
        with contextlib.suppress(queue.Empty):
            while True:
                self._reads.get_nowait()
        with contextlib.suppress(queue.Full):
            self._reads.put_nowait(ProtocolError("the body was closed"))

    def _pump(self) -> None:
        try:
            for data in self._response.iter_bytes():
                if self._aborted:
                    return
                self._reads.put(data)
            self._reads.put(_END)
        except Exception as exc:  # handed to the reader, which maps it to an error event
            if not self._aborted:
                self._reads.put(exc)
