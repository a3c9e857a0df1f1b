"""What chatapp/streaming/greenlets.py does under gevent.

Run as `python -m tests.unit.streaming.greenlets_probe`.

Patches the process as gunicorn's gevent worker does (which the pytest process must never be),
then plays each scenario on socket pairs, each within `SCENARIO_S`, and prints one JSON object: per
scenario, what the greenlets saw. test_greenlets.py asserts on it.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402  (after patching, like the worker)
import socket  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from chatapp.gevent_mode import gevent_patched  # noqa: E402
from chatapp.streaming.greenlets import (  # noqa: E402
    current_greenlet,
    hang_up,
    interrupt,
    wake_read,
    watch_for_disconnect,
)

# The longest any scenario may take; a scenario that waits this long has failed.
SCENARIO_S = 5.0
# How long a scenario waits for something that must not happen (a callback that should not come).
NOTHING_S = 0.2
# More than a socket pair's buffers hold: a write of this blocks until the peer reads.
BLOCKING_WRITE = b"x" * 50_000_000


def within(timeout: float, condition: Callable[[], bool]) -> bool:
    """Yield to the hub until `condition()` or `timeout` seconds passed; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        gevent.sleep(0.005)
    return True


def blocked_reader(sock: socket.socket) -> gevent.Greenlet:
    """A greenlet blocked in a read with no timeout, as a relay under gevent reads; its value is
    what it read, or the name of what ended the read."""

    def read() -> str:
        try:
            return sock.recv(16).decode()
        except BaseException as exc:  # GreenletExit too: that is what interrupt() raises
            return type(exc).__name__

    greenlet = gevent.spawn(read)
    gevent.sleep(0)  # it runs up to its read, and waits there
    return greenlet


def identity() -> dict[str, Any]:
    spawned = gevent.spawn(lambda: current_greenlet() is gevent.getcurrent())
    spawned.join(SCENARIO_S)
    return {"patched": gevent_patched(), "current_greenlet_is_the_running_one": spawned.value}


def disconnect() -> dict[str, Any]:
    client, peer = socket.socketpair()
    called: list[bool] = []
    watch_for_disconnect(client, lambda: called.append(True))
    gevent.sleep(0)
    peer.close()
    noticed = within(SCENARIO_S, lambda: bool(called))
    client.close()
    return {"called_back_when_the_peer_closed": noticed}


def data_is_not_a_disconnect() -> dict[str, Any]:
    client, peer = socket.socketpair()
    called: list[bool] = []
    watch_for_disconnect(client, lambda: called.append(True))
    gevent.sleep(0)
    peer.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request
    called_back = within(NOTHING_S, lambda: bool(called))
    peer.close()
    client.close()
    return {"called_back_on_data": called_back}


def stopped_watch() -> dict[str, Any]:
    client, peer = socket.socketpair()
    called: list[bool] = []
    stop = watch_for_disconnect(client, lambda: called.append(True))
    assert stop is not None
    gevent.sleep(0)
    stop()
    peer.close()
    called_back = within(NOTHING_S, lambda: bool(called))
    client.close()
    return {"called_back_after_stop": called_back}


def interrupted() -> dict[str, Any]:
    upstream, server = socket.socketpair()
    opener = blocked_reader(upstream)  # a helper waiting for an upstream's headers
    interrupt(opener)
    opener.join(SCENARIO_S)
    upstream.close()
    server.close()
    return {"ended": opener.dead, "saw": opener.value}


def woken(due: bool) -> dict[str, Any]:
    upstream, server = socket.socketpair()
    reader = blocked_reader(upstream)
    asked: list[bool] = []

    def still_due() -> bool:
        asked.append(True)
        return due

    wake_read(reader, still_due)
    was_asked = within(SCENARIO_S, lambda: bool(asked))
    gevent.sleep(0)
    ended_by_the_wake = reader.dead  # the hub threw into it at once, or never will
    server.sendall(b"data")
    reader.join(SCENARIO_S)
    upstream.close()
    server.close()
    return {"asked": was_asked, "ended_by_the_wake": ended_by_the_wake, "saw": reader.value}


def wake_a_dead_greenlet() -> dict[str, Any]:
    finished = gevent.spawn(lambda: None)
    finished.join(SCENARIO_S)
    asked: list[bool] = []

    def still_due() -> bool:
        asked.append(True)
        return True

    wake_read(finished, still_due)  # the hub prints what that raises
    return {"asked": within(SCENARIO_S, lambda: bool(asked))}


def hung_up() -> dict[str, Any]:
    client, peer = socket.socketpair()
    failure: list[OSError] = []

    def write() -> None:
        try:
            client.sendall(BLOCKING_WRITE)
        except OSError as exc:
            failure.append(exc)

    writer = gevent.spawn(write)
    gevent.sleep(0)  # it writes until the buffers are full, and waits there
    blocked = not writer.dead
    hang_up(client)
    writer.join(SCENARIO_S)
    report = {
        "was_blocked": blocked,
        "ended": writer.dead,
        "errno": failure[0].errno if failure else None,
        "error": str(failure[0]) if failure else None,
        "socket_still_open": client.fileno() != -1,
    }
    client.close()
    peer.close()
    return report


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "identity": identity,
    "disconnect": disconnect,
    "data_is_not_a_disconnect": data_is_not_a_disconnect,
    "stopped_watch": stopped_watch,
    "interrupt": interrupted,
    "wake_when_due": lambda: woken(due=True),
    "wake_when_not_due": lambda: woken(due=False),
    "wake_a_dead_greenlet": wake_a_dead_greenlet,
    "hang_up": hung_up,
}


def main() -> None:
    report: dict[str, Any] = {}
    for name, scenario in SCENARIOS.items():
        try:
            with gevent.Timeout(SCENARIO_S * 2):
                report[name] = scenario()
        except BaseException as exc:
            report[name] = {"failed": repr(exc)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
