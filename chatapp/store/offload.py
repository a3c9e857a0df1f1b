"""Where a unit of database work runs, so that it never stalls a gevent worker's other greenlets.

The surprise: gevent's monkey-patching makes sockets cooperative, but not C
libraries that block on their own. sqlite3 is one: a write that waits for a lock
held by another process sleeps inside SQLite's busy handler, with the whole
worker (every stream it relays) frozen meanwhile. psycopg 3 is not: it drives
libpq without blocking and waits on the socket with `select.poll`, and when it
is imported after gevent patched `select` it picks that cooperative wait
(`psycopg.waiting.wait_poll`) instead of its C one.

So a store's `Units` are, per database and process:
- SQLite under gevent: `InlineFirst` (inline_first.py): in the calling greenlet,
  on connections of the hub's thread that never wait; a unit that would wait
  runs again in the store's one dedicated thread (`Lane.dedicated`), whose
  connection waits there, and other units that find the lock taken queue behind
  it, cooperatively. A unit in a thread costs several times its CPU in a busy
  worker (inline_first.py says why), so only what must wait goes there.
- SQLite otherwise (`flask run` serves from several threads; tests, scripts):
  `SplitLanes`, one dedicated thread and connection for reads and one for
  writes, so that a connection has one user, and a read never queues behind a
  write waiting for a lock (under WAL, readers never wait for the writer).
- PostgreSQL: inline in the caller with SQLAlchemy's pool when psycopg waits
  cooperatively (or outside gevent); under gevent with psycopg's C wait (psycopg
  imported before patching), `MAX_NATIVE_THREADS` threads of the store's own,
  with a connection per unit (a pool's queue would park a native thread on a
  greenlet's Condition).

Every SQLite connection is kept for the store's life (engine.py: opening one per
unit cost more than the unit) and used by the one thread that opened it, which
sqlite3 checks (`check_same_thread`, on).

Threads of the store's own, not the hub's pool (`get_hub().threadpool`): that one
also resolves host names (gevent's default resolver), and a database wait must
never take its threads. Under gevent they are a `gevent.threadpool.ThreadPool`,
whose threads are native and kept while idle (no idle timeout), so a connection
is never orphaned by its thread; outside gevent, a `ThreadPoolExecutor` (under
gevent its threads would be greenlets, `threading` being patched).

Why a connection in a native thread is correct although monkey-patching turned
`threading.Lock` and `local` (so every lock SQLAlchemy makes) into gevent
primitives, made for greenlets of one hub: the units are Core statements on a
`StaticPool` of one connection (no `Session`, no pool queue, no thread-local),
so no gevent primitive is ever waited on in the thread. What is left are locks
taken without contention (the dialect's once-only set-up on the first connect,
which `Store.__init__` makes in the lane's thread) or only tried without blocking
(the statement cache's), and each engine, with its cache, belongs to one lane.
A unit must not touch greenlets or gevent objects.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from ..gevent_mode import gevent_patched
from .engine import WRITE_OPTION

T = TypeVar("T")

# PostgreSQL without a cooperative wait: units running in native threads at once, each with
# a connection of its own.
MAX_NATIVE_THREADS = 4


def psycopg_cooperates() -> bool:
    """True when psycopg waits on its sockets through gevent's patched `select` and `selectors`."""
    import selectors

    from psycopg import waiting

    # psycopg picks its wait function once, when first imported (waiting.py's module end), and
    # waits for a connection with the selector class it imported then.
    c_wait = getattr(waiting, "wait_c", None)
    selector = getattr(waiting, "DefaultSelector", None)
    return waiting.wait is not c_wait and selector is selectors.DefaultSelector


def needs_native_thread(backend: str) -> bool:
    """Whether units of work for this backend must run in a native thread under gevent."""
    if not gevent_patched():
        return False
    return backend != "postgresql" or not psycopg_cooperates()


class Runner(Protocol):
    """Runs a callable somewhere and returns what it returned (or raises what it raised)."""

    @property
    def native_thread(self) -> bool: ...

    def call(self, fn: Callable[[], T]) -> T: ...

    def close(self) -> None: ...


class Inline:
    """Runs the callable in the caller."""

    native_thread = False

    def call(self, fn: Callable[[], T]) -> T:
        return fn()

    def close(self) -> None:
        pass


class Threads:
    """`count` native threads of their own; `call` runs the callable in one and waits for it.

    Create it per process, after gevent patched it (the `Store` is created in each worker). Under
    gevent, call it from greenlets of the hub that created it: gevent's pool runs a call from any
    other thread in that thread, which sqlite3's thread check then refuses.
    """

    native_thread = True

    def __init__(self, count: int, name: str) -> None:
        self.count = count
        self._pool: Any = None
        self._executor: ThreadPoolExecutor | None = None
        if gevent_patched():
            from gevent.threadpool import ThreadPool

            # Greenlets wait for a free thread on the pool's semaphore, cooperatively.
            self._pool = ThreadPool(count)
        else:
            self._executor = ThreadPoolExecutor(count, thread_name_prefix=name)

    def call(self, fn: Callable[[], T]) -> T:
        if self._executor is not None:
            return self._executor.submit(fn).result()
        done, result = self._pool.apply(_outcome, (fn,))
        if not done:
            raise result
        value: T = result
        return value

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
        else:
            self._pool.kill()


def _outcome(fn: Callable[[], T]) -> tuple[bool, T | Exception]:
    """(True, what fn returned) or (False, what it raised), for the caller's greenlet to re-raise.

    gevent's pool re-raises a task's exception in the caller, but also prints it with its
    traceback to stderr as an unhandled error: every `ConversationNotFound` would be logged.
    """
    try:
        return True, fn()
    except Exception as error:
        return False, error


class Units(Protocol):
    """Where a store's units of work run: `run(fn, write)` is one unit, one transaction."""

    @property
    def native_thread(self) -> bool: ...

    def open(self) -> None: ...

    def run(self, fn: Callable[[Connection], T], write: bool = False) -> T: ...

    def close(self) -> None: ...


class Lane:
    """An engine and the runner of its units. Each unit checks a connection out of the engine's
    pool, unless the lane is `dedicated`."""

    def __init__(self, engine: Engine, runner: Runner, *, keep_connection: bool = False) -> None:
        if keep_connection and not (isinstance(runner, Threads) and runner.count == 1):
            raise ValueError("only a lane with one thread of its own may keep its connection")
        self.engine = engine
        self.runner = runner
        self._keep_connection = keep_connection
        self._connection: Connection | None = None  # opened and used in the runner's thread only
        self._closed = False

    @classmethod
    def dedicated(cls, engine: Engine, name: str) -> Lane:
        """One thread of its own, which keeps one `Connection` open for every unit (SQLite: a unit
        then costs its statements, not a connection's checkout and return)."""
        return cls(engine, Threads(1, name), keep_connection=True)

    @property
    def native_thread(self) -> bool:
        return self.runner.native_thread

    def open(self) -> None:
        """Connect now, in the runner: a database that cannot be opened fails here, and the
        dialect's once-only set-up on the first connection is done."""
        self.run(lambda _connection: None)

    def run(self, fn: Callable[[Connection], T], write: bool = False) -> T:
        """`fn(connection)` in one transaction on the runner, committed when it returns. `write`: on
        SQLite, BEGIN IMMEDIATE (a unit that writes waits for the write lock at its start)."""
        return self.runner.call(lambda: self._unit(fn, write))

    def run_on_driver(self, fn: Callable[[Any], T]) -> T:
        """`fn(the DBAPI connection)` outside any transaction, on the runner: for what SQLite will
        not do inside one (a WAL checkpoint). Dedicated lanes only."""
        if not self._keep_connection:
            raise ValueError("only a dedicated lane has a connection of its own")

        def on_driver() -> T:
            if self._connection is None:
                self._connection = self.engine.connect()
            return fn(self._connection.connection.driver_connection)

        return self.runner.call(on_driver)

    def close(self) -> None:
        """Close the connection in the thread that opened it, then stop the runner."""
        if self._closed:
            return
        self._closed = True
        self.runner.call(self._close_connection)
        self.runner.close()

    def _unit(self, fn: Callable[[Connection], T], write: bool) -> T:
        if not self._keep_connection:
            with self.engine.connect() as connection:
                return transaction(connection, fn, write)
        if self._connection is None:
            self._connection = self.engine.connect()
        return transaction(self._connection, fn, write)

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.engine.dispose()


class SplitLanes:
    """Reads on one lane, writes on another (SQLite outside gevent: a thread and a connection each,
    so that a read never queues behind a write waiting for another process's lock)."""

    def __init__(self, reads: Lane, writes: Lane) -> None:
        self._reads, self._writes = reads, writes

    @property
    def native_thread(self) -> bool:
        return self._writes.native_thread

    def open(self) -> None:
        self._reads.open()
        self._writes.open()

    def run(self, fn: Callable[[Connection], T], write: bool = False) -> T:
        return (self._writes if write else self._reads).run(fn, write)

    def close(self) -> None:
        self._reads.close()
        self._writes.close()


def transaction(connection: Connection, fn: Callable[[Connection], T], write: bool) -> T:
    """`fn(connection)` in one transaction, committed when it returns, rolled back if it raises."""
    connection.execution_options(**{WRITE_OPTION: write})
    with connection.begin():
        return fn(connection)
