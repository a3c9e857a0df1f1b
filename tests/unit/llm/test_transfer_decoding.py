"""Undoing the chunked transfer coding: in any split, with extensions and trailers, and refusing broken
framing; and the completion that takes a parser holding the start of the body to its end."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatapp.llm.transfer_decoding import LAST_CHUNK, MAX_RECORD, ChunkedTransferDecoder, ProtocolError


def chunked(*pieces: bytes, trailers: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n" + trailers + b"\r\n"


def decode_in(pieces: list[bytes], parser_has: int = 0) -> tuple[bytes, ChunkedTransferDecoder]:
    decoder = ChunkedTransferDecoder(parser_has)
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


def test_the_completion_is_the_last_chunk_when_the_parser_holds_whole_chunks():
    first = chunked(b"hello")[: -len(LAST_CHUNK)]
    decoder = ChunkedTransferDecoder(parser_has=len(first))
    decoder.feed(first)
    decoder.feed(chunked(b"world"))
    assert decoder.completion() == LAST_CHUNK


def test_a_huge_first_chunk_is_not_kept_for_the_completion():
    """The bytes kept for the other parser run to the next chunk boundary: a 1 MB chunk would be held
    whole, so past MAX_RECORD the decoder keeps none, and the connection is closed instead of reused."""
    big = b"x" * (MAX_RECORD * 16)
    body = chunked(big, b"y")
    decoder = ChunkedTransferDecoder(parser_has=10)
    data = b"".join(decoder.feed(body[i : i + 4096]) for i in range(0, len(body), 4096))
    assert data == big + b"y"
    assert decoder.finished
    assert decoder.completion() == b""
