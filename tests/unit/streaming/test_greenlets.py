"""The gevent plumbing (chatapp/streaming/greenlets.py): under gevent, noticing at once that a client
closed its connection, ending a greenlet blocked waiting for an upstream, waking a read with no
timeout only when it is still due, and cutting a client blocked in a write without gevent's EBADF;
outside gevent, the helpers that need greenlets do nothing.

gevent must not patch the pytest process: what happens under gevent is played by
`greenlets_probe.py` in a subprocess, once for the module, and asserted here scenario by scenario."""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

import pytest

from chatapp.gevent_mode import gevent_patched
from chatapp.streaming.greenlets import current_greenlet, hang_up, watch_for_disconnect
from tests.support.probes import run_probe


@pytest.fixture(scope="module")
def under_gevent() -> dict[str, Any]:
    """The probe's report, per scenario, with what it wrote to stderr as "stderr"."""
    return run_probe(["-m", "tests.unit.streaming.greenlets_probe"])


def scenario(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = report[name]
    assert "failed" not in found, found["failed"]
    return found


# -- under gevent -----------------------------------------------------------------------


def test_under_gevent_the_current_greenlet_is_the_one_running(under_gevent: dict[str, Any]) -> None:
    assert scenario(under_gevent, "identity") == {
        "patched": True,
        "current_greenlet_is_the_running_one": True,
    }


def test_watch_for_disconnect_calls_back_as_soon_as_the_peer_closes(under_gevent: dict[str, Any]) -> None:
    assert scenario(under_gevent, "disconnect")["called_back_when_the_peer_closed"]


def test_data_from_the_peer_is_not_taken_for_a_disconnect(under_gevent: dict[str, Any]) -> None:
    assert not scenario(under_gevent, "data_is_not_a_disconnect")["called_back_on_data"]


def test_a_stopped_watch_never_calls_back(under_gevent: dict[str, Any]) -> None:
    assert not scenario(under_gevent, "stopped_watch")["called_back_after_stop"]


def test_interrupt_ends_a_greenlet_blocked_in_a_read(under_gevent: dict[str, Any]) -> None:
    assert scenario(under_gevent, "interrupt") == {"ended": True, "saw": "GreenletExit"}


def test_wake_read_raises_read_wake_in_a_blocked_read_that_is_due(under_gevent: dict[str, Any]) -> None:
    assert scenario(under_gevent, "wake_when_due") == {
        "asked": True,
        "ended_by_the_wake": True,
        "saw": "ReadWake",
    }


def test_wake_read_leaves_a_read_that_is_no_longer_due_to_its_data(under_gevent: dict[str, Any]) -> None:
    """The check is made when the hub gets to it: by then the read may have returned, and its
    greenlet be in a write that must not be interrupted."""
    woken = scenario(under_gevent, "wake_when_not_due")
    assert woken == {"asked": True, "ended_by_the_wake": False, "saw": "data"}


def test_waking_a_greenlet_that_already_ended_raises_nothing(under_gevent: dict[str, Any]) -> None:
    assert scenario(under_gevent, "wake_a_dead_greenlet")["asked"]
    assert "Traceback" not in under_gevent["stderr"], under_gevent["stderr"]


def test_hang_up_fails_a_blocked_write_as_a_closed_connection_would(under_gevent: dict[str, Any]) -> None:
    """Not with gevent's "File descriptor was closed in another greenlet" (EBADF), which gunicorn
    logs as an error with a traceback: the write fails as on any connection the peer closed."""
    cut = scenario(under_gevent, "hang_up")
    assert cut["was_blocked"], "the write never blocked: nothing was proven"
    assert cut["ended"]
    assert cut["errno"] == errno.EPIPE, cut["error"]
    assert cut["socket_still_open"], "the server's socket is gunicorn's to close"


# -- outside gevent ---------------------------------------------------------------------


def test_outside_gevent_there_is_no_current_greenlet() -> None:
    assert gevent_patched() is False
    assert current_greenlet() is None


def test_outside_gevent_nothing_watches_for_a_disconnect() -> None:
    client, peer = socket.socketpair()
    with client, peer:
        assert watch_for_disconnect(client, lambda: pytest.fail("called back")) is None
    assert watch_for_disconnect(None, lambda: pytest.fail("called back")) is None


def test_hang_up_also_fails_a_thread_blocked_in_a_write() -> None:
    client, peer = socket.socketpair()
    failures: list[OSError] = []

    def write() -> None:
        try:
            client.sendall(b"x" * 50_000_000)  # more than the socket pair's buffers hold
        except OSError as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    with client, peer:
        writer.start()
        peer.settimeout(5)
        assert peer.recv(1) == b"x"  # the write is under way

        hang_up(client)
        writer.join(5)

    assert not writer.is_alive()
    assert [exc.errno for exc in failures] == [errno.EPIPE]


def test_hang_up_of_a_closed_socket_does_nothing() -> None:
    client, peer = socket.socketpair()
    client.close()
    peer.close()

    hang_up(client)
