"""text/event-stream decoding up to each event's data: bytes in any split, the `data` of complete events out.

The line and field rules are the WHATWG HTML standard's ("Interpreting an event
stream"): a line ends at LF, CRLF or a lone CR, so a CR at the end of one feed
may be the first half of a CRLF and is carried into the next; `data:` lines
are gathered (one leading space dropped) and joined with LF; a blank line
dispatches the event; an event the stream ends in the middle of is never
dispatched. Comments (`:`), `event:`, `id:`, `retry:` and unknown fields carry
nothing an OpenAI-compatible stream uses, so they are skipped. What the data
means is `completion_events.py`'s business.
"""

from __future__ import annotations


class SseLineDecoder:
    """Fed a text/event-stream body as it arrives; hands back the data of each event it completes."""

    def __init__(self) -> None:
        self._pending = b""  # the start of a line whose end has not arrived
        self._data: list[bytes] = []  # the data lines of the event being read

    def feed(self, data: bytes) -> list[bytes]:
        """The data of each event that `data` completes, in order (none: `[]`)."""
        # Lists, not generators, on this per-token path: a generator frame per line costs more
        # than the line's work.
        payloads: list[bytes] = []
        for line in self.lines(data):
            if line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            elif not line and self._data:
                payloads.append(self._data[0] if len(self._data) == 1 else b"\n".join(self._data))
                self._data.clear()
        return payloads

    def lines(self, data: bytes) -> list[bytes]:
        """The lines that `data` completes, without their line endings."""
        if b"\r" in data or self._pending.endswith(b"\r"):
            data = self._pending + data
            # A CR at the very end may be the first half of a CRLF: keep it for the next feed.
            keep = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep:
                data = data[:-1]
            lines = data.split(b"\n")
            self._pending = lines.pop() + (b"\r" if keep else b"")
        else:
            lines = (self._pending + data).split(b"\n")
            self._pending = lines.pop()
        return lines
