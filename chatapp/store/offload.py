"""Where a unit of database work runs, so that it never stalls a gevent worker's other greenlets.

The surprise: gevent's monkey-patching makes sockets cooperative, but not C
libraries that block on their own. sqlite3 is one: a write that waits for a lock
held by another process sleeps inside SQLite's busy handler, and a slow query
computes in C, with the whole worker (every stream it relays) frozen meanwhile.
psycopg 3 is not: it drives libpq without blocking and waits on the socket with
`select.poll`, and when it is imported after gevent patched `select` it picks
that cooperative wait (`psycopg.waiting.wait_poll`) instead of its C one.

So, under gevent:
- SQLite work runs in gevent's native thread pool (`get_hub().threadpool`); the
  greenlet waits for its result cooperatively.
- PostgreSQL work runs inline in the greenlet, when psycopg chose a cooperative
  wait; otherwise (psycopg imported before patching, or forced to its C wait)
  it goes to the thread pool like SQLite.
Outside gevent (`flask run`, plain tests, scripts) everything runs inline.

Work in a native thread must stay away from what monkey-patching turned into
greenlet primitives: a pool queue's patched Condition, a session shared with a
greenlet. store.py says how the store does (a session per unit of work, SQLite
without a pool) and why the few locks left are safe; `Store.open` picks the
engine to match `needs_native_thread`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Units of work running in native threads at once. The hub's pool (10 threads) also resolves
# host names (gevent's default resolver); a locked database must not take all of them.
MAX_NATIVE_THREADS = 4


def gevent_patched() -> bool:
    """True when gevent has monkey-patched this process (a gunicorn gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_anything_patched())


def in_hub_thread() -> bool:
    """True in a thread that runs greenlets under a gevent hub (not in one of its pool's threads)."""
    if not gevent_patched():
        return False
    from gevent._hub_local import get_hub_if_exists

    # The hub's pool threads have no hub of their own.
    return get_hub_if_exists() is not None


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


class Offloader:
    """Runs a callable inline, or in the hub's native thread pool when under gevent and asked to.

    Created per process (the `Store` is created in each worker, after gevent patched it).
    """

    def __init__(self, native_thread: bool, max_threads: int = MAX_NATIVE_THREADS) -> None:
        self.native_thread = native_thread
        self._max_threads = max_threads
        self._slots: Any = None  # a gevent semaphore, made in the hub's thread on first use

    def call(self, fn: Callable[[], T]) -> T:
        if not (self.native_thread and in_hub_thread()):
            return fn()
        import gevent
        from gevent.lock import BoundedSemaphore

        if self._slots is None:
            self._slots = BoundedSemaphore(self._max_threads)
        # Greenlets queue here, cooperatively, rather than in the pool for a native thread.
        with self._slots:
            done, result = gevent.get_hub().threadpool.apply(_outcome, (fn,))
        if not done:
            raise result
        value: T = result
        return value


def _outcome(fn: Callable[[], T]) -> tuple[bool, T | Exception]:
    """(True, what fn returned) or (False, what it raised), for the caller's greenlet to re-raise.

    gevent's pool re-raises a task's exception in the caller, but also prints it with its
    traceback to stderr as an unhandled error: every `ConversationNotFound` would be logged.
    """
    try:
        return True, fn()
    except Exception as error:
        return False, error
