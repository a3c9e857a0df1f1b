"""Encoding of `text/event-stream` frames (WHATWG HTML, "Server-sent events").

Pure functions from values to bytes; no Flask, no I/O. Two rules keep a frame
from being cut short or merged with the next one:

- a data value holding CR or LF is written as several `data:` lines, which the
  reader joins back with "\\n" (writing it raw would end the field early);
- `id` and `event` are single-line fields, so CR and LF are removed from them.

`event_frame` is the one encoder of events, the relay's per-token path included
(`protocol.EventWriter` calls it with a line of JSON, which needs no splitting).
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_NEWLINES = re.compile(r"[\r\n]")


def event_frame(data: str | bytes, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """Frame one event whose data may span several lines."""
    raw = data.encode() if isinstance(data, str) else data
    head = b""
    if event_id is not None:
        head = b"id: " + _one_line(event_id) + b"\n"
    if event is not None:
        head += b"event: " + _one_line(event) + b"\n"
    if b"\n" in raw or b"\r" in raw:
        body = b"".join([b"data: " + line + b"\n" for line in _LINE_BREAK.split(raw)])
    else:
        body = b"data: " + raw + b"\n"
    return head + body + b"\n"


def comment_frame(text: str = "") -> bytes:
    """A comment: ignored by readers, but it keeps proxies and idle timers from closing the stream."""
    lines = _LINE_BREAK.split(text.encode())
    return b"".join([b":" + (b" " + line if line else b"") + b"\n" for line in lines]) + b"\n"


def _one_line(value: str) -> bytes:
    if "\n" in value or "\r" in value:
        value = _NEWLINES.sub("", value)
    return value.encode()


# Sent while nothing else is: keeps proxies and idle timers from closing a quiet stream, and lets a
# reader tell a live connection from a dead one.
KEEP_ALIVE = comment_frame("keep-alive")
