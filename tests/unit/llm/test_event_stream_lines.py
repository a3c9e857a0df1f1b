"""text/event-stream lines and events as the WHATWG HTML standard reads them, fed in any split."""

import time

import pytest

from chatapp.llm.event_stream_lines import LineTooLong, SseLineDecoder


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


def test_a_line_fed_one_byte_at_a_time_comes_out_whole():
    decoder = SseLineDecoder()
    body = b"data: caf\xc3\xa9\n"
    assert [line for i in range(len(body)) for line in decoder.lines(body[i : i + 1])] == [
        b"data: caf\xc3\xa9"
    ]


def seconds_to_read(pieces: list[bytes]) -> float:
    """The least of five runs of a new decoder fed `pieces` one by one."""
    best = float("inf")
    for _ in range(5):
        decoder = SseLineDecoder(max_line_bytes=sum(map(len, pieces)))
        started = time.perf_counter()
        for piece in pieces:
            decoder.lines(piece)
        best = min(best, time.perf_counter() - started)
    return best


def test_a_long_line_in_4_kb_pieces_takes_linear_time():
    """Regression: the start of an unfinished line was a bytes object that every read was added to,
    copying the whole line again per read. Under gunicorn a 10 MB line stalled the worker (every
    stream on it) for 0.8 s, 30 MB for 5.4 s, and 100 MB froze it until gunicorn killed it; fed in
    4 KB pieces here, that version took 15 s for 10 MB and 110 s for 30 MB. Kept as pieces and
    joined once, an 8 MB line takes about as long as the same bytes as two thousand short lines (the
    reference, measured here on whatever machine runs it), where that version took hundreds of
    times as long."""
    piece, count = b"x" * 4095, 2048
    one_line = [b"data: ", *[piece] * count, b"\n"]
    short_lines = [piece + b"\n"] * count
    decoder = SseLineDecoder(max_line_bytes=len(piece) * count + 64)
    assert [decoder.lines(p) for p in one_line][-1] == [b"data: " + piece * count]

    ratio = seconds_to_read(one_line) / seconds_to_read(short_lines)
    assert ratio < 10, f"one long line took {ratio:.1f} times as long as the same bytes in short lines"


LIMIT = 100


@pytest.mark.parametrize(
    "pieces",
    [
        [b"x" * (LIMIT + 1)],
        [b"x" * 60, b"x" * 41],
        [b"x" * 101 + b"\n"],
        [b"x" * 60, b"x" * 41 + b"\n"],
        [b"x" * 60, b"x" * 41 + b"\r\n"],
    ],
    ids=["one feed", "two feeds", "with its end", "its end in a second feed", "CRLF"],
)
def test_a_line_over_the_limit_is_refused(pieces):
    decoder = SseLineDecoder(max_line_bytes=LIMIT)
    for piece in pieces[:-1]:
        assert decoder.lines(piece) == []
    with pytest.raises(LineTooLong):
        decoder.lines(pieces[-1])


def test_a_line_at_the_limit_is_a_line():
    decoder = SseLineDecoder(max_line_bytes=LIMIT)
    assert decoder.lines(b"x" * 60) == []
    assert decoder.lines(b"x" * 40 + b"\r") == []  # the CR that may be half a CRLF is not counted
    assert decoder.lines(b"\nshort\n") == [b"x" * LIMIT, b"short"]
    assert decoder.lines(b"y" * LIMIT + b"\n" + b"z" * LIMIT) == [b"y" * LIMIT]
    assert decoder.lines(b"\n") == [b"z" * LIMIT]


def test_a_line_without_an_end_is_refused_as_soon_as_it_passes_the_limit():
    """An upstream that never ends its line is cut at the limit, not when (if ever) the line ends."""
    decoder = SseLineDecoder(max_line_bytes=1000)
    for _ in range(1000 // 64):  # 960 bytes
        assert decoder.lines(b"x" * 64) == []
    with pytest.raises(LineTooLong):
        decoder.lines(b"x" * 64)


def test_the_lines_before_an_over_long_one_in_the_same_feed_are_kept():
    decoder = SseLineDecoder(max_line_bytes=LIMIT)
    with pytest.raises(LineTooLong) as caught:
        decoder.lines(b"a\nb\n" + b"x" * 200 + b"\nc\n")
    assert caught.value.completed == [b"a", b"b"]
    with pytest.raises(LineTooLong) as caught:
        decoder.lines(b"c\n" + b"x" * 200)
    assert caught.value.completed == [b"c"]


def test_the_data_of_one_event_over_the_limit_is_refused_however_many_lines_it_takes():
    decoder = SseLineDecoder(max_line_bytes=LIMIT)
    assert decoder.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"x" * 39 + b"\n\n") == [
        b"x" * 60 + b"\n" + b"x" * 39
    ]
    assert decoder.feed(b"data: a\n\ndata: " + b"x" * 60 + b"\n") == [b"a"]
    with pytest.raises(LineTooLong) as caught:
        decoder.feed(b"data: " + b"x" * 40 + b"\n")  # 60 + LF + 40: one byte over
    assert caught.value.completed == []


def test_events_completed_before_an_over_long_line_are_handed_back():
    decoder = SseLineDecoder(max_line_bytes=LIMIT)
    with pytest.raises(LineTooLong) as caught:
        decoder.feed(b"data: a\n\ndata: b\n\ndata: " + b"x" * 200)
    assert caught.value.completed == [b"a", b"b"]
