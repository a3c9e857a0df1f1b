"""Encoding of `text/event-stream` frames (WHATWG HTML, "Server-sent events").

Pure functions from values to bytes; no Flask, no I/O. Two rules keep a frame
from being cut short or merged with the next one:

- a data value holding CR or LF is written as several `data:` lines, which the
  reader joins back with "\\n" (writing it raw would end the field early);
- `id` and `event` are single-line fields, so CR and LF are removed from them.
"""

from __future__ import annotations

import re

import orjson

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NEWLINES = re.compile(r"[\r\n]")


def event_frame(data: str, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """Frame one event whose data may span several lines."""
    parts = []
    if event_id is not None:
        parts.append(f"id: {_one_line(event_id)}\n")
    if event is not None:
        parts.append(f"event: {_one_line(event)}\n")
    parts.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    parts.append("\n")
    return "".join(parts).encode()


def json_event_frame(event: str, payload: object, event_id: str) -> bytes:
    """Frame one event whose data is `payload` as a single line of JSON.

    orjson escapes every control character, CR and LF included, so its output is
    always one line and needs no splitting: this is the relay's per-token path.
    """
    return b"".join(
        (
            b"id: ",
            event_id.encode(),
            b"\nevent: ",
            event.encode(),
            b"\ndata: ",
            orjson.dumps(payload),
            b"\n\n",
        )
    )


def comment_frame(text: str = "") -> bytes:
    """A comment: ignored by readers, but it keeps proxies and idle timers from closing the stream."""
    return "".join(f":{' ' if line else ''}{line}\n" for line in _LINE_BREAK.split(text)).encode() + b"\n"


def _one_line(value: str) -> str:
    return _NEWLINES.sub("", value)
