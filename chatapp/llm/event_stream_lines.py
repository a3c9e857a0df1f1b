"""text/event-stream decoding up to each event's data: bytes in any split, the `data` of complete events out.

The line and field rules are the WHATWG HTML standard's ("Interpreting an event
stream"): a line ends at LF, CRLF or a lone CR, so a CR at the end of one feed
may be the first half of a CRLF and is carried into the next; `data:` lines
are gathered (one leading space dropped) and joined with LF; a blank line
dispatches the event; an event the stream ends in the middle of is never
dispatched. Comments (`:`), `event:`, `id:`, `retry:` and unknown fields carry
nothing an OpenAI-compatible stream uses, so they are skipped. What the data
means is `completion_events.py`'s business.

Bounded, and linear in its input: the start of a line whose end has not arrived
is kept as a list of pieces, joined once when the line ends (adding each read to
a growing bytes object copied the whole line again on every read: a 100 MB line
froze the worker), and a line, or one event's data lines together, longer than
`max_line_bytes` raises `LineTooLong` as soon as it is, without waiting for an end
that may never come.
"""

from __future__ import annotations

# One chunk of an OpenAI-compatible stream is one line of JSON holding one delta: a few hundred
# bytes for a token. The largest a real server sends is a whole answer as one delta (a
# non-streaming model behind a streaming proxy): 128K tokens of output at most, about 512 KB of
# English, or 1.2 MB of CJK text written as \uXXXX escapes. 4 MiB is several times that, and small
# enough that a worker reads it in a few milliseconds and holds it only once.
MAX_LINE_BYTES = 4 * 1024 * 1024


class LineTooLong(ValueError):
    """A line, or the data lines of one event together, passed the decoder's limit.

    `completed`: what the same feed completed before it (lines, from `lines`; the data of
    events, from `feed`), so that the caller can keep it. The stream is not to be fed again."""

    def __init__(self, limit: int, completed: list[bytes]) -> None:
        super().__init__(f"a line or an event of the upstream's stream is longer than {limit} bytes")
        self.limit = limit
        self.completed = completed


class SseLineDecoder:
    """Fed a text/event-stream body as it arrives; hands back the data of each event it completes."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._partial: list[bytes] = []  # the start of a line whose end has not arrived, in pieces
        self._partial_bytes = 0
        self._cr = False  # the last feed ended in a CR: maybe the first half of a CRLF
        self._data: list[bytes] = []  # the data lines of the event being read
        self._data_bytes = 0  # their length joined, counted from the second line on

    def feed(self, data: bytes) -> list[bytes]:
        """The data of each event that `data` completes, in order (none: `[]`)."""
        try:
            lines = self.lines(data)
        except LineTooLong as exc:
            exc.completed = self._dispatch(exc.completed)
            raise
        return self._dispatch(lines)

    def _dispatch(self, lines: list[bytes]) -> list[bytes]:
        # Lists, not generators, on this per-token path: a generator frame per line costs more
        # than the line's work.
        payloads: list[bytes] = []
        gathered = self._data
        for line in lines:
            if line.startswith(b"data:"):
                value = line[5:]
                value = value[1:] if value.startswith(b" ") else value
                if gathered:  # a second data line (OpenAI's streams never send one): count them
                    self._gather_more(value, payloads)
                gathered.append(value)
            elif not line and gathered:
                payloads.append(gathered[0] if len(gathered) == 1 else b"\n".join(gathered))
                gathered.clear()
        return payloads

    def _gather_more(self, value: bytes, payloads: list[bytes]) -> None:
        if len(self._data) == 1:
            self._data_bytes = len(self._data[0])
        self._data_bytes += 1 + len(value)
        if self._data_bytes > self.max_line_bytes:
            self._data.clear()
            raise LineTooLong(self.max_line_bytes, payloads)

    def lines(self, data: bytes) -> list[bytes]:
        """The lines that `data` completes, without their line endings."""
        if self._cr or b"\r" in data:
            data = self._lf_only(data)
        lines = data.split(b"\n")
        tail = lines.pop()
        if self._partial and lines:
            lines[0] = self._join_partial(lines[0])
        if len(data) > self.max_line_bytes:  # only then can a line that came whole be too long
            self._check(lines)
        if tail:
            self._hold(tail, lines)
        return lines

    def _lf_only(self, data: bytes) -> bytes:
        """`data` with every line end as LF, a CR at its very end held back for the next feed."""
        if self._cr:
            data = b"\r" + data
        self._cr = data.endswith(b"\r")
        if self._cr:
            data = data[:-1]
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _hold(self, piece: bytes, completed: list[bytes]) -> None:
        """Keep the start of a line whose end has not arrived."""
        self._partial_bytes += len(piece)
        if self._partial_bytes > self.max_line_bytes:
            self._drop_partial()
            raise LineTooLong(self.max_line_bytes, completed)
        self._partial.append(piece)

    def _join_partial(self, end: bytes) -> bytes:
        if self._partial_bytes + len(end) > self.max_line_bytes:
            self._drop_partial()
            raise LineTooLong(self.max_line_bytes, [])
        self._partial.append(end)
        line = b"".join(self._partial)
        self._drop_partial()
        return line

    def _drop_partial(self) -> None:
        self._partial = []
        self._partial_bytes = 0

    def _check(self, lines: list[bytes]) -> None:
        for i, line in enumerate(lines):
            if len(line) > self.max_line_bytes:
                raise LineTooLong(self.max_line_bytes, lines[:i])
