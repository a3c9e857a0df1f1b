"""text/event-stream lines and events as the WHATWG HTML standard reads them, fed in any split."""

import pytest

from chatapp.llm.sse_lines import SseLineDecoder


def feed_lines(pieces):
    decoder = SseLineDecoder()
    return [decoder.lines(piece) for piece in pieces]


@pytest.mark.parametrize(
    ("pieces", "lines_per_feed"),
    [
        ([b"a\nb\n"], [[b"a", b"b"]]),
        ([b"a\r\nb\r\n"], [[b"a", b"b"]]),
        ([b"a\rb\r\r"], [[b"a", b"b"]]),  # the last CR may be half a CRLF: not yet a line
        ([b"a\rb\r\r", b""], [[b"a", b"b"], []]),
        ([b"a\rb\r\r", b"c"], [[b"a", b"b"], [b""]]),
        # After httpx's LineDecoder tests: a CR that ends one feed and the LF that starts the next.
        ([b"", b"a\r", b"\n\r\nb\r\nc"], [[], [], [b"a", b"", b"b"]]),
        ([b"a\r", b"\r"], [[], [b"a"]]),
        ([b"a\r", b"b"], [[], [b"a"]]),
        ([b"a", b"b\n"], [[], [b"ab"]]),
        ([b"\n\n"], [[b"", b""]]),
    ],
)
def test_a_line_ends_at_lf_crlf_or_a_lone_cr_wherever_the_feeds_split(pieces, lines_per_feed):
    assert feed_lines(pieces) == lines_per_feed


def test_an_unfinished_line_waits_for_its_end():
    decoder = SseLineDecoder()
    assert decoder.lines(b"data: 1") == []
    assert decoder.lines(b"23\n") == [b"data: 123"]


@pytest.mark.parametrize(
    ("pieces", "payloads"),
    [
        ([b"data: a\n\n"], [b"a"]),
        ([b"data:a\n\n"], [b"a"]),
        ([b"data:  a\n\n"], [b" a"]),  # only one leading space is dropped
        ([b"data: a\ndata: b\n\n"], [b"a\nb"]),
        ([b"data: a\r\n\r\ndata: b\r\r"], [b"a"]),  # the last CR may be half a CRLF: no blank line yet
        ([b"data: a\r\n\r\ndata: b\r\r", b":"], [b"a", b"b"]),
        ([b"data: a\n", b"\n"], [b"a"]),
        ([b"data: a\n"], []),  # no blank line yet: the event is not complete
        ([b": comment\nevent: x\nid: 1\nretry: 5\ndata: a\n\n"], [b"a"]),
        ([b"\n\n: only a comment\n\n"], []),  # blank lines with no data dispatch nothing
        ([b"data: a\n\ndata: b\n\n"], [b"a", b"b"]),
    ],
)
def test_each_blank_line_dispatches_the_data_gathered_since_the_last(pieces, payloads):
    decoder = SseLineDecoder()
    assert [p for piece in pieces for p in decoder.feed(piece)] == payloads


def test_the_data_is_the_same_wherever_the_body_is_split():
    body = b"data: caf\xc3\xa9\r\ndata: 2\r\n\r\n: ping\r\rdata: [DONE]\r\r\n"
    for cut in range(len(body) + 1):
        decoder = SseLineDecoder()
        assert decoder.feed(body[:cut]) + decoder.feed(body[cut:]) == [b"caf\xc3\xa9\n2", b"[DONE]"], cut
