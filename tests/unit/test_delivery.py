"""chatapp/delivery.py: the kernel's count of bytes a client has acknowledged."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from chatapp.streaming.delivery import DeliveryWatch, bytes_acked

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
