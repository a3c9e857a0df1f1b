"""chatapp/streaming/delivery.py: the bytes a client has acknowledged, and the write clock built on them."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from chatapp.streaming.delivery import DeliveryWatch, WriteClock, bytes_acked

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO's bytes_acked is Linux's")


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    yield server, client
    server.close()
    client.close()


def acked_at_least(sock: socket.socket, n: int) -> int:
    deadline = time.monotonic() + 2
    while (acked := bytes_acked(sock) or 0) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return acked


@linux_only
def test_bytes_acked_counts_what_the_peer_has_received(tcp_pair):
    server, client = tcp_pair
    before = bytes_acked(server)
    assert before is not None
    server.sendall(b"x" * 1000)
    assert client.recv(1000)
    assert acked_at_least(server, before + 1000) >= before + 1000


def test_a_unix_socket_has_no_count():
    a, b = socket.socketpair()
    with a, b:
        assert bytes_acked(a) is None
    assert bytes_acked(None) is None


@linux_only
def test_the_watch_sees_bytes_taken_since_its_last_look(tcp_pair):
    server, client = tcp_pair
    watch = DeliveryWatch(server)
    assert not watch.took_bytes()  # the first look only sets the mark
    assert not watch.took_bytes()  # nothing sent since
    server.sendall(b"x" * 100)
    client.recv(100)
    acked_at_least(server, 100)
    assert watch.took_bytes()
    assert not watch.took_bytes()


def test_without_a_count_the_watch_never_sees_progress():
    a, b = socket.socketpair()
    with a, b:
        watch = DeliveryWatch(a)
        a.sendall(b"x")
        b.recv(1)
        assert not watch.took_bytes()
        assert not watch.took_bytes()


def test_the_write_clock_runs_only_while_a_write_waits():
    clock = WriteClock(None)
    assert clock.stalled_s(100.0) == 0.0  # nothing being written
    clock.since = 100.0
    assert clock.stalled_s(107.5) == 7.5  # no count to show progress: stalled from the write's start
    clock.since = None
    assert clock.stalled_s(200.0) == 0.0


@linux_only
def test_the_write_clock_restarts_when_the_client_takes_bytes(tcp_pair):
    """A slow reader that acknowledges bytes is never stalled for longer than between two acks."""
    server, client = tcp_pair
    clock = WriteClock(server)
    clock.since = 10.0
    assert clock.stalled_s(15.0) == 5.0  # the first look only marks the count
    server.sendall(b"x" * 100)
    client.recv(100)
    acked_at_least(server, 100)
    assert clock.stalled_s(20.0) == 0.0  # bytes taken since: the clock starts again now
    assert clock.stalled_s(23.0) == 3.0
