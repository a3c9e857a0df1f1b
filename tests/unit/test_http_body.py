"""Reading a chunked body straight from the socket: decoding in any split, and leaving h11 (and so
the pooled connection) exactly where reading the whole body through h11 would have."""

import itertools

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatapp.llm.http_body import LAST_CHUNK, ChunkedDecoder, ProtocolError, finish_h11


def chunked(*pieces: bytes, trailers: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n" + trailers + b"\r\n"


def decode_in(pieces: list[bytes], h11_has: int = 0) -> tuple[bytes, ChunkedDecoder]:
    decoder = ChunkedDecoder(h11_has)
    return b"".join(decoder.feed(p) for p in pieces), decoder


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


EVENTS = [b'data: {"choices": [{"delta": {"content": "Caf\xc3\xa9"}}]}\n\n', b"data: [DONE]\n\n", b"x" * 300]


def test_a_body_in_one_piece():
    data, decoder = decode_in([chunked(*EVENTS)])
    assert data == b"".join(EVENTS)
    assert decoder.finished


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_a_body_split_anywhere_decodes_the_same(cuts):
    body = chunked(*EVENTS)
    data, decoder = decode_in(split_at(body, cuts))
    assert data == b"".join(EVENTS)
    assert decoder.finished


def test_chunk_extensions_and_trailers_are_skipped():
    body = b"5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    data, decoder = decode_in([body])
    assert data == b"hello"
    assert decoder.finished


def test_not_finished_until_the_last_chunk_and_its_empty_line():
    body = chunked(b"hello")
    data, decoder = decode_in([body[:-2]])
    assert data == b"hello"
    assert not decoder.finished
    decoder.feed(body[-2:])
    assert decoder.finished


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nhello\r\n", b"5\r\nhelloXX0\r\n\r\n", b"0x5\r\nhello\r\n", b"1_0\r\n", b"9" * 5000],
    ids=["not hex", "data longer than its size", "0x prefix", "underscore", "endless size line"],
)
def test_broken_framing_is_a_protocol_error(body):
    with pytest.raises(ProtocolError):
        decode_in([body])


def h11_client_with(head_and_start: bytes) -> h11.Connection:
    """An h11 client that sent a request and has received a response's headers plus these bytes."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + head_and_start)
    assert type(conn.next_event()) is h11.Response
    return conn


def assert_h11_finishes_cleanly(h11_has: int, cuts: list[int]) -> None:
    body = chunked(*EVENTS)
    conn = h11_client_with(body[:h11_has])
    data, decoder = decode_in([body[:h11_has], *split_at(body[h11_has:], cuts)], h11_has=h11_has)
    assert decoder.finished
    assert data == b"".join(EVENTS)
    assert finish_h11(conn, decoder.h11_completion())
    assert conn.trailing_data == (b"", False)  # nothing left over, and not taken for closed
    conn.start_next_cycle()  # raises unless both sides are done


@given(st.integers(min_value=0), st.lists(st.integers(min_value=0), max_size=8))
def test_h11_reaches_the_end_of_the_message_wherever_its_bytes_stopped(h11_has, cuts):
    """Wherever the bytes received with the headers end (inside a size line, a chunk, its CRLF,
    the last chunk), the completion takes h11 to the end of the message and no further: the
    connection is clean for the next request."""
    assert_h11_finishes_cleanly(h11_has % (len(chunked(*EVENTS)) + 1), cuts)


@pytest.mark.parametrize("from_end", [0, 1, 2, 5, 6])
def test_h11_finishes_cleanly_when_it_holds_all_or_nearly_all_of_the_body(from_end):
    """Regression: with the whole body received along with the headers, the completion is empty,
    and handing h11 b"" told it the connection had closed, so the pooled connection failed the
    next request."""
    assert_h11_finishes_cleanly(len(chunked(*EVENTS)) - from_end, [])


def test_the_completion_is_the_last_chunk_when_h11_holds_whole_chunks():
    first = chunked(b"hello")[: -len(LAST_CHUNK)]
    decoder = ChunkedDecoder(h11_has=len(first))
    decoder.feed(first)
    decoder.feed(chunked(b"world"))
    assert decoder.h11_completion() == LAST_CHUNK
