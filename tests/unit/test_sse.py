"""SSE framing: exact bytes for each kind of value (after sse-starlette's tests/test_event.py)."""

import json

import pytest

from chatapp import sse
from chatapp.protocol import EventWriter
from tests.support.sse_client import SseDecoder


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
        ({"data": "a\r\nb\rc"}, b"data: a\ndata: b\ndata: c\n\n"),
        ({"data": "trailing\n"}, b"data: trailing\ndata: \n\n"),
        ({"data": "x", "event": "token"}, b"event: token\ndata: x\n\n"),
        ({"data": "x", "event_id": "s:1"}, b"id: s:1\ndata: x\n\n"),
        ({"data": "x", "event": "to\nken", "event_id": "s\r:1"}, b"id: s:1\nevent: token\ndata: x\n\n"),
        ({"data": "café 中文 🚀"}, "data: café 中文 🚀\n\n".encode()),
        # The relay's path: data already encoded as one line of JSON.
        (
            {"data": b'{"text":"x"}', "event": "token", "event_id": "s:2"},
            b'id: s:2\nevent: token\ndata: {"text":"x"}\n\n',
        ),
        ({"data": b"a\r\nb"}, b"data: a\ndata: b\n\n"),
    ],
)
def test_event_frame_bytes(kwargs, expected):
    assert sse.event_frame(**kwargs) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b":\n\n"),
        ("keep-alive", b": keep-alive\n\n"),
        ("two\nlines", b": two\n: lines\n\n"),
    ],
)
def test_comment_frame_bytes(text, expected):
    assert sse.comment_frame(text) == expected


def test_a_json_event_is_one_data_line_with_id_and_event():
    frame = EventWriter("abc").token("a\nb\r\nc")
    assert frame == b'id: abc:1\nevent: token\ndata: {"text":"a\\nb\\r\\nc"}\n\n'


@pytest.mark.parametrize(
    "text",
    ["plain", "line\nbreak", "cr\ronly", "crlf\r\n", "\u2028 and \u2029", "é中🚀", "\x00\x1f", '"quoted"'],
)
def test_a_json_event_round_trips_through_a_decoder(text):
    """Whatever a token holds, a WHATWG decoder gets back exactly one event with the same text."""
    frame = EventWriter("s").token(text)
    events = list(SseDecoder().feed(frame))
    assert [(e.event, e.id) for e in events] == [("token", "s:1")]
    assert json.loads(events[0].data) == {"text": text}


def test_multiline_data_round_trips_through_a_decoder():
    events = list(SseDecoder().feed(sse.event_frame("one\ntwo\r\nthree", event="m")))
    assert [(e.event, e.data) for e in events] == [("m", "one\ntwo\nthree")]
