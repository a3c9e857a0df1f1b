"""SQLite under gevent: a unit runs in the calling greenlet, unless it would wait; then in a thread.

The surprise that shaped this: a unit run in a native thread of a busy gevent
worker costs several times its own CPU. sqlite3 releases the GIL around every
call into SQLite (BEGIN, each step, COMMIT), and each time the hub's thread,
which relays the streams, takes it; getting it back is a handoff between two OS
threads. Measured with 200 greenlets relaying: one answer's six units cost
3.3-4.1 ms of CPU in a thread, 0.9 ms in the greenlet.

So `InlineFirst` runs each unit in the calling greenlet, on connections kept
open in the hub's thread that never wait: their busy timeout is 0, so a unit
that finds the database locked by another process fails at once with
SQLITE_BUSY, is rolled back, and runs again from the start in `waiting`, the
store's dedicated thread, whose connection waits on the busy timeout there (as
does every unit that arrives meanwhile and finds the lock taken). Under WAL a
write can only meet the lock at its BEGIN IMMEDIATE, before it did anything,
and readers practically never do. In `python -m bench.conversations` this took
the conversation/chat CPU ratio from 1.11-1.22x (every unit in the thread) to
1.11-1.13x.

Why this is correct:
- the connections belong to the hub's thread (sqlite3's `check_same_thread` is
  on; a call from any other thread goes to `waiting`);
- greenlets never interleave on them: a unit is C work and Core statements that
  never yield to the hub, and a unit that starts while another is in progress
  (which only a unit that yielded could cause) goes to `waiting` instead;
- nothing slow runs in the hub's thread: SQLite checkpoints the WAL into the
  database file (writing it and fsyncing) on the commit that finds it long,
  so these connections never do (`wal_autocheckpoint = 0`); every
  `CHECKPOINT_EVERY` writes, `waiting` does, and the writes that come meanwhile
  queue behind it there: a checkpoint that writers overtake leaves the WAL
  unfinished, and SQLite only starts a WAL over once one has caught up with it.
What still runs here is what any request does: CPU for microseconds to a few
milliseconds (a page of a long conversation) and reads of the file's pages,
from the OS cache when the database is in use.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from .offload import Lane, transaction

T = TypeVar("T")

log = logging.getLogger(__name__)

# The WAL is checkpointed after this many write units, each a few pages (SQLite's own default:
# when it passes 1,000 pages, about 4 MB).
CHECKPOINT_EVERY = 200

_WAITS = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class InlineFirst:
    """Units in the calling greenlet on connections that never wait; those that would, in `waiting`.

    Create it in the hub's thread (the `Store` is created in each worker, by a greenlet).
    `reads` and `writes`: SQLite engines of one kept connection each, with a busy timeout of
    0 and no WAL checkpoints (engine.py); `waiting`: the store's dedicated lane.
    """

    native_thread = True  # whatever waits for the database does so in a native thread

    def __init__(self, reads: Engine, writes: Engine, waiting: Lane) -> None:
        from gevent.monkey import get_original

        self._native_ident: Callable[[], int] = get_original("_thread", "get_ident")
        self._hub_thread = self._native_ident()
        self._engines = {False: reads, True: writes}
        self._connections: dict[bool, Connection] = {}
        self._waiting = waiting
        self._in_unit = False
        self._writes = 0
        self._checkpointing = False

    def open(self) -> None:
        for write in (False, True):
            self._connection(write)
        self._waiting.open()

    def run(self, fn: Callable[[Connection], T], write: bool = False) -> T:
        if self._in_unit or self._native_ident() != self._hub_thread or (write and self._checkpointing):
            return self._waiting.run(fn, write)
        if write:
            self._writes += 1
            if self._writes % CHECKPOINT_EVERY == 0:
                self._checkpoint()
        self._in_unit = True
        try:
            return transaction(self._connection(write), fn, write)
        except OperationalError as error:
            if not _would_wait(error):
                raise
        finally:
            self._in_unit = False
        # Rolled back: nothing of it was written. From the start, where waiting stalls no greenlet.
        return self._waiting.run(fn, write)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        for engine in self._engines.values():
            engine.dispose()
        self._waiting.close()

    def _connection(self, write: bool) -> Connection:
        connection = self._connections.get(write)
        if connection is None:
            connection = self._connections[write] = self._engines[write].connect()
        return connection

    def _checkpoint(self) -> None:
        """Checkpoint the WAL in `waiting`; this greenlet waits for it, and other writes queue there."""
        self._checkpointing = True
        try:
            self._waiting.run_on_driver(_checkpoint_wal)
        except Exception:  # the write goes on; the next checkpoint retries, meanwhile the WAL grows
            log.exception("WAL checkpoint failed")
        finally:
            self._checkpointing = False


def _checkpoint_wal(driver_connection: Any) -> None:
    driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _would_wait(error: OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (extended codes included): another connection holds a lock."""
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _WAITS
