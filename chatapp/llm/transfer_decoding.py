"""HTTP/1.1 transfer decoding: `Transfer-Encoding: chunked` undone, fed the body's bytes in any split.

Pure: bytes in, bytes out, no sockets and no HTTP library. `upstream_body.py`
feeds it what it reads from the upstream's socket, about 1 µs per chunk where
httpx's stack costs tens. It also works out what another parser (h11, there)
needs to reach the end of the message when that parser holds the start of the
body: see `ChunkedTransferDecoder.completion`.
"""

from __future__ import annotations

import re

MAX_LINE = 4096  # a chunk-size or trailer line longer than this is not HTTP
# The body bytes kept for `completion` (from what the other parser holds to the next chunk
# boundary) are a few hundred as servers chunk a stream: past this, the decoder keeps none and
# the connection is closed at the end rather than reused, instead of holding a huge chunk.
MAX_RECORD = 64 * 1024
LAST_CHUNK = b"0\r\n\r\n"
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")


class ProtocolError(OSError):
    """The upstream broke HTTP/1.1 framing, or closed the connection in the middle of the body.

    An OSError, as a broken connection is: a reader handles both alike."""


class ChunkedTransferDecoder:
    """Undoes `Transfer-Encoding: chunked`, fed the body's bytes in any split.

    Another parser may hold the first `parser_has` bytes of the body already
    (h11 reads them along with the headers). The decoder keeps what that
    parser needs to finish the message (`completion()`): handed the bytes from
    there to the next chunk boundary, then the last chunk, it reaches the end of
    the message in the same state as if it had read the whole body.
    """

    def __init__(self, parser_has: int = 0) -> None:
        self.finished = False
        self._buf = b""
        self._offset = 0  # position in the body of _buf[0]
        self._fed = 0  # bytes fed so far
        self._left = 0  # data bytes left in the current chunk
        self._crlf = 0  # bytes of the CRLF after a chunk's data still to come
        self._trailers = False  # after the last chunk: header lines until an empty one
        self._parser_has = parser_has
        self._record: bytearray | None = bytearray()  # body bytes from parser_has on, until a boundary
        self._completion = b""

    def feed(self, data: bytes) -> bytes:
        """The decoded data in `data` (and in what came before it), as far as it is complete."""
        if self._record is not None:
            self._record += data[max(0, self._parser_has - self._fed) :]
            if len(self._record) > MAX_RECORD:
                self._record = None
        self._fed += len(data)
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos, end = 0, len(buf)
        while pos < end and not self.finished:
            if self._left:
                take = min(self._left, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._crlf = 2
            elif self._crlf:
                take = min(self._crlf, end - pos)
                if buf[pos : pos + take] != b"\r\n"[2 - self._crlf : 2 - self._crlf + take]:
                    raise ProtocolError("a chunk's data does not end where its size says")
                pos += take
                self._crlf -= take
            else:
                if self._record is not None and not self._trailers:
                    self._boundary(self._offset + pos)
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > MAX_LINE:
                        raise ProtocolError("a chunk-size line is too long")
                    break
                line = buf[pos:eol]
                pos = eol + 2
                if self._trailers:
                    if not line:
                        self._finish(self._offset + pos)
                    continue
                size = _CHUNK_SIZE.fullmatch(line)
                if size is None:
                    raise ProtocolError("a chunk-size line is not a hexadecimal number")
                self._left = int(size.group(1), 16)
                self._trailers = not self._left
        self._offset += pos
        self._buf = buf[pos:]
        return out[0] if len(out) == 1 else b"".join(out)

    def completion(self) -> bytes:
        """What to hand the parser that holds the first `parser_has` bytes, once `finished`,
        for it to reach the end of the message too (and no further). Nothing when the decoder
        gave up keeping it (a chunk over MAX_RECORD): that parser does not reach the end then,
        and the connection is closed rather than reused."""
        return self._completion

    def _boundary(self, at: int) -> None:
        # The first chunk boundary at or past what the parser holds: from there, the last chunk ends it.
        if at >= self._parser_has:
            assert self._record is not None
            self._completion = bytes(self._record[: at - self._parser_has]) + LAST_CHUNK
            self._record = None

    def _finish(self, at: int) -> None:
        self.finished = True
        if self._record is not None:  # the message ended before a boundary past the parser's bytes
            self._completion = bytes(self._record[: max(0, at - self._parser_has)])
            self._record = None
