"""Finishing h11 after the body was read straight from the socket: it ends exactly where reading the
whole body through h11 would have, so the pooled connection is clean for the next request."""

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatapp.llm.upstream_body import finish_h11
from tests.unit.llm.test_transfer_decoding import EVENTS, chunked, decode_in, split_at


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
    data, decoder = decode_in([body[:h11_has], *split_at(body[h11_has:], cuts)], parser_has=h11_has)
    assert decoder.finished
    assert data == b"".join(EVENTS)
    assert finish_h11(conn, decoder.completion())
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
