"""serving/body_clock.py: a request body that pauses too long, or drips too slowly, ends in 408."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from werkzeug.exceptions import RequestTimeout

from serving.body_clock import BodyClock


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def test_bytes_that_arrive_in_time_are_read(pair):
    server, client = pair
    client.sendall(b"{}")
    assert BodyClock(server, idle_s=1, total_s=5).recv(10) == b"{}"


def test_a_pause_longer_than_the_idle_time_is_a_request_timeout(pair):
    server, _ = pair
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        BodyClock(server, idle_s=0.2, total_s=5).recv(10)
    # The idle time ended it, not the total time (however slow the machine that runs this).
    assert 0.15 < time.monotonic() - started < 5 / 2


def test_a_body_that_keeps_dripping_past_the_total_time_is_a_request_timeout(pair):
    server, client = pair
    clock = BodyClock(server, idle_s=0.3, total_s=0.5)
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.1):
            client.sendall(b"x")

    def read_all() -> None:
        for _ in range(100):
            assert clock.recv(1) == b"x"

    threading.Thread(target=drip, daemon=True).start()
    try:
        with pytest.raises(RequestTimeout):
            read_all()
    finally:
        stop.set()


def test_the_socket_blocks_again_after_a_read(pair):
    server, client = pair
    client.sendall(b"x")
    BodyClock(server, idle_s=1, total_s=5).recv(1)
    assert server.gettimeout() is None
