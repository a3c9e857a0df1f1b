"""SQLite units in the caller unless they would wait (chatapp/store/inline_first.py): a unit runs on
the calling thread's kept connections, which never wait; one that finds the write lock taken, one
that starts inside another, one from another thread, and a write that comes while the WAL is being
checkpointed run in `waiting`, the store's own thread, whose connection waits.

Outside gevent the calling thread stands for the hub's; what only gevent shows (units of several
greenlets, one that yields mid-unit) is played by a probe in a subprocess."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from chatapp.store import inline_first
from chatapp.store.engine import create_store_engine
from chatapp.store.inline_first import InlineFirst
from chatapp.store.offload import Lane
from tests.support.probes import run_probe

LANE = "waiting"


class Spied:
    """An InlineFirst on a fresh SQLite file, with what its `waiting` lane was asked to run counted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        url = f"sqlite:///{path}"
        self.waiting = Lane.dedicated(create_store_engine(url), LANE)
        self.units = InlineFirst(
            create_store_engine(url, read_only=True, waits=False),
            create_store_engine(url, waits=False),
            self.waiting,
        )
        self.units.open()
        self.sent_to_the_lane = 0
        self.moved = threading.Event()
        self.checkpoints = 0
        run, run_on_driver = self.waiting.run, self.waiting.run_on_driver

        def lane_run(fn: Callable[[Connection], Any], write: bool = False) -> Any:
            self.sent_to_the_lane += 1
            self.moved.set()
            return run(fn, write)

        def lane_checkpoint(fn: Callable[[Any], Any]) -> Any:
            self.checkpoints += 1
            return run_on_driver(fn)

        self.waiting.run = lane_run  # type: ignore[method-assign]
        self.waiting.run_on_driver = lane_checkpoint  # type: ignore[method-assign]

    def close(self) -> None:
        self.units.close()


@pytest.fixture
def spied(tmp_path: Path) -> Iterator[Spied]:
    database = tmp_path / "db.sqlite3"
    with closing(sqlite3.connect(database)) as setup:
        setup.execute("CREATE TABLE scratch (n INTEGER)")
    spied = Spied(database)
    yield spied
    spied.close()


def where(connection: Connection) -> str:
    """A unit that says which thread ran it."""
    return threading.current_thread().name


def insert(n: int) -> Callable[[Connection], str]:
    def unit(connection: Connection) -> str:
        connection.execute(text("INSERT INTO scratch (n) VALUES (:n)"), {"n": n})
        return threading.current_thread().name

    return unit


def stored(connection: Connection) -> list[int]:
    return list(connection.scalars(text("SELECT n FROM scratch ORDER BY n")))


def test_a_unit_that_need_not_wait_runs_in_the_calling_thread(spied: Spied) -> None:
    here = threading.current_thread().name

    assert spied.units.run(where) == here
    assert spied.units.run(insert(1), write=True) == here

    assert spied.units.run(stored) == [1]
    assert spied.sent_to_the_lane == 0


def test_a_unit_from_another_thread_runs_in_the_lane(spied: Spied) -> None:
    """The kept connections belong to the thread that opened them (sqlite3 checks it)."""
    ran_in: list[str] = []
    caller = threading.Thread(target=lambda: ran_in.append(spied.units.run(where)))

    caller.start()
    caller.join(10)

    assert len(ran_in) == 1
    assert ran_in[0].startswith(LANE)
    assert spied.sent_to_the_lane == 1


def test_a_write_that_finds_the_database_locked_runs_again_in_the_lane_which_waits(spied: Spied) -> None:
    """The connection of the calling thread never waits (a greenlet waiting there would stall the
    worker): SQLITE_BUSY at once, then the lane, whose busy timeout waits for the lock."""
    other_process = sqlite3.connect(spied.path, isolation_level=None, check_same_thread=False)
    other_process.execute("BEGIN IMMEDIATE")  # holds the write lock
    other_process.execute("INSERT INTO scratch (n) VALUES (1)")

    def commit_once_the_write_waits_in_the_lane() -> None:
        spied.moved.wait(10)
        other_process.execute("COMMIT")

    releaser = threading.Thread(target=commit_once_the_write_waits_in_the_lane)
    releaser.start()
    try:
        ran_in = spied.units.run(insert(2), write=True)
    finally:
        releaser.join(10)
        other_process.close()

    assert ran_in.startswith(LANE)
    assert spied.units.run(stored) == [1, 2]


def test_a_read_goes_through_while_another_connection_holds_the_write_lock(spied: Spied) -> None:
    with closing(sqlite3.connect(spied.path, isolation_level=None)) as other_process:
        other_process.execute("BEGIN IMMEDIATE")
        other_process.execute("INSERT INTO scratch (n) VALUES (1)")

        assert spied.units.run(stored) == []  # WAL: readers never wait for the writer
        other_process.execute("COMMIT")

    assert spied.sent_to_the_lane == 0


def test_a_unit_that_fails_otherwise_raises_at_once_and_is_not_run_again(spied: Spied) -> None:
    tries: list[str] = []

    def broken(connection: Connection) -> None:
        tries.append(threading.current_thread().name)
        connection.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(OperationalError, match="no such table"):
        spied.units.run(broken)

    assert tries == [threading.current_thread().name]
    assert spied.sent_to_the_lane == 0


def test_a_unit_that_raises_is_rolled_back(spied: Spied) -> None:
    def half_done(connection: Connection) -> None:
        insert(1)(connection)
        raise ValueError("changed its mind")

    with pytest.raises(ValueError, match="changed its mind"):
        spied.units.run(half_done, write=True)

    assert spied.units.run(stored) == []


def test_a_unit_started_while_another_is_in_progress_runs_in_the_lane(spied: Spied) -> None:
    """Only a unit that yielded to the hub lets another start meanwhile (see the gevent probe);
    the two must not share a connection mid-transaction."""

    def outer(connection: Connection) -> tuple[str, str]:
        return threading.current_thread().name, spied.units.run(where)

    outer_in, inner_in = spied.units.run(outer)

    assert outer_in == threading.current_thread().name
    assert inner_in.startswith(LANE)


def test_the_wal_is_checkpointed_in_the_lane_every_checkpoint_every_writes(
    spied: Spied, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_first, "CHECKPOINT_EVERY", 3)

    for n in range(7):
        spied.units.run(insert(n), write=True)

    assert spied.checkpoints == 2
    assert spied.units.run(stored) == list(range(7))


def test_a_write_that_comes_during_a_checkpoint_queues_in_the_lane_and_a_read_does_not(
    spied: Spied, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint that writers overtake never catches up with the WAL."""
    monkeypatch.setattr(inline_first, "CHECKPOINT_EVERY", 1)
    meanwhile: dict[str, str] = {}
    checkpoint = spied.waiting.run_on_driver

    def checkpoint_with_others_arriving(fn: Callable[[Any], Any]) -> Any:
        meanwhile["read"] = spied.units.run(where)
        meanwhile["write"] = spied.units.run(insert(2), write=True)
        return checkpoint(fn)

    spied.waiting.run_on_driver = checkpoint_with_others_arriving  # type: ignore[method-assign]
    spied.units.run(insert(1), write=True)

    assert meanwhile["read"] == threading.current_thread().name
    assert meanwhile["write"].startswith(LANE)
    assert spied.units.run(stored) == [1, 2]


def test_a_failed_checkpoint_does_not_fail_the_write(
    spied: Spied, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(inline_first, "CHECKPOINT_EVERY", 1)

    def failing(fn: Callable[[Any], Any]) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    spied.waiting.run_on_driver = failing  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger=inline_first.__name__):
        spied.units.run(insert(1), write=True)

    assert spied.units.run(stored) == [1]
    assert "WAL checkpoint failed" in caplog.text


# -- under gevent -----------------------------------------------------------------------

GEVENT_PROBE = """
from gevent import monkey

monkey.patch_all()

import json, sys

import gevent
from gevent.event import Event

from chatapp.store import Store, upgrade_to_head

NATIVE_IDENT = monkey.get_original("_thread", "get_ident")
HUB_THREAD = NATIVE_IDENT()


def where(connection):
    return NATIVE_IDENT() == HUB_THREAD, id(connection.connection.driver_connection)


url = sys.argv[1]
upgrade_to_head(url)
store = Store.open(url)
many = [gevent.spawn(store.run, where) for _ in range(5)]
gevent.joinall(many, timeout=10)

inside, let_go = Event(), Event()


def yields_mid_unit(connection):
    inside.set()
    let_go.wait(10)  # a unit must not do this; if one does, others must not share its connection
    return where(connection)


yielding = gevent.spawn(store.run, yields_mid_unit)
inside.wait(10)
meanwhile = gevent.spawn(store.run, where)
meanwhile.join(10)
let_go.set()
yielding.join(10)
after = store.run(where)
store.close()
print(json.dumps({
    "greenlets_in_the_hub_thread": [g.value[0] for g in many],
    "greenlets_connections": len({g.value[1] for g in many}),
    "yielding": yielding.value,
    "meanwhile": meanwhile.value,
    "after": after,
}))
"""


def test_under_gevent_units_of_every_greenlet_run_in_the_hub_thread_but_never_share_a_unit(
    tmp_path: Path,
) -> None:
    report = run_probe(["-c", GEVENT_PROBE, f"sqlite:///{tmp_path / 'db.sqlite3'}"])

    assert report["greenlets_in_the_hub_thread"] == [True] * 5
    assert report["greenlets_connections"] == 1
    in_hub, connection = report["yielding"]
    assert in_hub
    assert report["meanwhile"][0] is False, "a unit started on a connection another unit was using"
    assert report["meanwhile"][1] != connection
    assert report["after"] == [True, connection], "units went back to the hub thread once it was free"
