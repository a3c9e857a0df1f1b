"""Whether a client is still taking the bytes written to it: what the write timeout measures.

A write to a client on a slow link waits while its socket's buffers are full, which for a few KB
at 64 bytes a second is longer than the write timeout, although the client reads all along. What
shows that it reads is the kernel's count of the bytes it has acknowledged (Linux's TCP_INFO,
`tcpi_bytes_acked`, since 4.1): a write is stalled only for as long as that count stands still.
Where the count is not available (a unix socket, another OS) a write is stalled from its start.

`WriteClock` is that measure for one connection: the relay's own client and a reattached reader
(resumable.py) both keep one, and the registry's sweeper reads it.
"""

from __future__ import annotations

import socket
import struct

_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None)
# struct tcp_info (linux/tcp.h): 8 bytes of u8 fields, 24 u32 fields, then the u64s
# pacing_rate, max_pacing_rate, bytes_acked.
_BYTES_ACKED = struct.Struct("=Q")
_BYTES_ACKED_OFFSET = 8 + 24 * 4 + 2 * 8
_TCP_INFO_SIZE = 256


def bytes_acked(sock: socket.socket | None) -> int | None:
    """How many bytes the peer has acknowledged on this TCP connection; None if unknown."""
    if sock is None or _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return None  # not TCP, or closed
    if len(info) < _BYTES_ACKED_OFFSET + _BYTES_ACKED.size:
        return None  # a kernel older than 4.1
    acked: int = _BYTES_ACKED.unpack_from(info, _BYTES_ACKED_OFFSET)[0]
    return acked


class DeliveryWatch:
    """Looks, when asked, whether a client has acknowledged bytes since the last look.

    Asked only about writes that are waiting (by the registry's sweeper, once a tick), so a client
    that keeps up costs nothing: no system call per token."""

    __slots__ = ("_acked", "_sock")

    def __init__(self, sock: socket.socket | None) -> None:
        self._sock = sock
        self._acked: int | None = None

    def took_bytes(self) -> bool:
        acked = bytes_acked(self._sock)
        if acked is None:
            return False
        before, self._acked = self._acked, acked
        return before is not None and acked > before


class WriteClock:
    """How long the write in progress to one client has gone without the client taking a byte.

    The writer sets `since` to the time a write starts and back to None once the client's socket
    took it (the server writes a yielded chunk before it asks for the next); the sweeper asks
    `stalled_s`. A plain attribute, so that the per-token path pays one store per write."""

    __slots__ = ("_delivery", "since")

    def __init__(self, sock: socket.socket | None) -> None:
        self.since: float | None = None
        self._delivery = DeliveryWatch(sock)

    def stalled_s(self, now: float) -> float:
        since = self.since
        if since is None:
            return 0.0
        if self._delivery.took_bytes():
            self.since = since = now
        return now - since
