"""Measure whether store calls stall a gevent process: run as `python -m tests.support.store_gevent_probe`.

Patches the process as gunicorn's gevent worker does, starts 50 greenlets that
tick every 20 ms (50 streams keeping their pace), then has the store wait on the
database: a SQLite write while another process holds the write lock
(`sqlite-lock`), or PostgreSQL queries that sleep (`pg-sleep`), several at once;
has greenlets use the whole API at once (`api`: every call, a typed error
included; and where units that need not wait ran: which thread, which sqlite3
connection); or checkpoints an answer many times (`wal`: how long the WAL grew).
Prints one JSON object: the longest gap between two ticks of any greenlet, how
long the database work took, how many units succeeded, and where they ran.
`--inline` runs the work in the calling greenlet on connections that wait for a
lock: the control that shows the probe does detect a stall.

The objects made at start-up (chatapp imports ~100,000: Flask, the openai SDK)
are frozen out of the garbage collector first, as a pre-fork server's worker
would do: otherwise one full collection pauses the process for 80-170 ms on a
busy 2-core machine, a stall that is the heap's, not the database's. The
longest collection is reported as `gc_max_ms`.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after patching, like the worker)
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from chatapp.store import ConversationNotFound, Outcome, Role, Status, Store, Turn, upgrade_to_head  # noqa: E402
from chatapp.store.engine import create_store_engine  # noqa: E402
from chatapp.store.offload import Inline, Lane  # noqa: E402

TICKERS = 50
TICK_S = 0.02

NATIVE_IDENT = monkey.get_original("_thread", "get_ident")
HUB_THREAD = NATIVE_IDENT()  # the main thread, whose hub runs every greenlet here

# Another process takes SQLite's write lock and holds it: what a second worker's long write does.
LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
db.execute("UPDATE conversations SET title = title")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


class CollectorWatch:
    """The longest pause of the garbage collector while it is installed."""

    def __init__(self) -> None:
        self.max_s = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.max_s = max(self.max_s, time.perf_counter() - self._started)

    def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)


class Ticker:
    """Greenlets that each sleep TICK_S in a loop and record the longest gap between two wake-ups."""

    def __init__(self, count: int) -> None:
        self.running = True
        self.max_gap_s = 0.0
        self.ticks = 0
        self.greenlets = [gevent.spawn(self._tick) for _ in range(count)]

    def _tick(self) -> None:
        last = time.monotonic()
        while self.running:
            gevent.sleep(TICK_S)
            now = time.monotonic()
            self.max_gap_s = max(self.max_gap_s, now - last)
            self.ticks += 1
            last = now

    def stop(self) -> None:
        self.running = False
        gevent.joinall(self.greenlets)


def open_store(url: str, inline: bool) -> Store:
    if inline:
        return Store(Lane(create_store_engine(url, pooled=False), Inline()))
    return Store.open(url)


def where(connection: Any) -> tuple[bool, int]:
    """A unit that says where it ran: in the hub's thread or not, and on which sqlite3 connection."""
    return NATIVE_IDENT() == HUB_THREAD, id(connection.connection.driver_connection)


def ask(store: Store, conversation_id: str, content: str, stream_id: str) -> Turn:
    """Send a message as the app does: a question after the branch on display, its answer started."""
    return store.ask(conversation_id, content, model=None, default_model="m", stream_id=stream_id)


def sqlite_lock(store: Store, url: str, concurrency: int, hold_s: float) -> dict[str, Any]:
    conversation = store.create_conversation()
    database = make_url(url).database
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(database), str(hold_s)], stdout=subprocess.PIPE
    )
    assert locker.stdout is not None
    if locker.stdout.readline() != b"locked\n":
        raise RuntimeError("the locking process did not take the lock")
    started = time.monotonic()
    # One read while the lock is held: WAL lets it through at once.
    reader = gevent.spawn(lambda: (store.get_conversation(conversation.id), time.monotonic() - started)[1])
    read_where = gevent.spawn(store.run, where)
    writers = [
        gevent.spawn(ask, store, conversation.id, f"written while locked {n}", f"s{n}")
        for n in range(concurrency)
    ]
    write_where = gevent.spawn(store.run, where, write=True)
    gevent.joinall([reader, read_where, *writers, write_where])
    elapsed = time.monotonic() - started
    locker.wait()
    # Each question follows the answer before it: one branch holds them all.
    written = [m for m in store.read_conversation(conversation.id).messages if m.role == Role.USER]
    return {
        "elapsed_s": elapsed,
        "read_s": reader.value,
        "ok": sum(1 for w in writers if w.successful()),
        "errors": [repr(w.exception) for w in writers if not w.successful()],
        "stored": len(written),
        "read_in_the_hub_thread": read_where.value[0],
        "waited_in_the_hub_thread": write_where.value[0],
    }


def pg_sleep(store: Store, concurrency: int, sleep_s: float) -> dict[str, Any]:
    started = time.monotonic()
    sleepers = [
        gevent.spawn(store.run, lambda s: s.execute(text(f"SELECT pg_sleep({sleep_s})")).scalar())
        for _ in range(concurrency)
    ]
    gevent.joinall(sleepers)
    return {
        "elapsed_s": time.monotonic() - started,
        "ok": sum(1 for g in sleepers if g.successful()),
        "errors": [repr(g.exception) for g in sleepers if not g.successful()],
    }


def conversation_round(store: Store) -> None:
    """One conversation through every kind of call, as the HTTP layer will make them."""
    conversation = store.create_conversation(system_prompt="Be brief.")
    first = ask(store, conversation.id, "hello", "a")
    assert first.context[0] == ("system", "Be brief.")
    store.checkpoint_many([(first.answer.id, "hel", None)])
    store.finish_answer(first.answer.id, "hel", None, Outcome(Status.STOPPED))
    second = store.ask_again(conversation.id, first.answer.id, model=None, default_model="m", stream_id="b")
    store.finish_answer(second.answer.id, "hello!", None, Outcome(Status.COMPLETE))
    shown = store.set_current_leaf(conversation.id, first.answer.id)
    assert [m.id for m in shown] == [first.question_id, first.answer.id]
    assert store.read_conversation(conversation.id).messages[-1].alternatives == (
        first.answer.id,
        second.answer.id,
    )
    store.update_conversation(conversation.id, title="renamed")
    assert store.list_conversations(limit=1)
    try:
        store.get_conversation("missing")
    except ConversationNotFound:
        pass
    else:
        raise AssertionError("no ConversationNotFound")
    store.delete_conversation(conversation.id)


def api(store: Store, concurrency: int) -> dict[str, Any]:
    # Where units that need not wait run: `concurrency` reads and as many writes, at once.
    reads = [gevent.spawn(store.run, where) for _ in range(concurrency)]
    writes = [gevent.spawn(store.run, where, write=True) for _ in range(concurrency)]
    gevent.joinall(reads + writes)
    # A unit that yields to the hub mid-transaction (none should) keeps its connection to itself.
    yielding = gevent.spawn(store.run, lambda connection: (gevent.sleep(0.05), where(connection))[1])
    gevent.sleep(0.01)
    meanwhile = gevent.spawn(store.run, where)
    gevent.joinall([yielding, meanwhile])
    started = time.monotonic()
    rounds = [gevent.spawn(conversation_round, store) for _ in range(concurrency)]
    gevent.joinall(rounds)
    return {
        "elapsed_s": time.monotonic() - started,
        "ok": sum(1 for g in rounds if g.successful()),
        "errors": [repr(g.exception) for g in rounds if not g.successful()],
        "units_in_the_hub_thread": sum(1 for g in reads + writes if g.value[0]),
        "connections": len({g.value[1] for g in reads + writes}),
        "shared_a_connection_mid_unit": yielding.value[1] == meanwhile.value[1],
    }


def wal(store: Store, url: str, writes: int) -> dict[str, Any]:
    """Checkpoint one answer `writes` times; how long the WAL file grew."""
    conversation = store.create_conversation()
    answer = ask(store, conversation.id, "hi", "s").answer
    started = time.monotonic()
    for n in range(writes):
        store.checkpoint_many([(answer.id, f"{n} " + "text " * 1000, None)])
    return {
        "elapsed_s": time.monotonic() - started,
        "ok": writes,
        "errors": [],
        "wal_bytes": os.path.getsize(f"{make_url(url).database}-wal"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["sqlite-lock", "pg-sleep", "api", "wal"])
    parser.add_argument("url")
    parser.add_argument("--inline", action="store_true", help="run the work in the greenlet (the control)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.5, help="how long the lock is held, or the sleep")
    args = parser.parse_args()

    upgrade_to_head(args.url)
    store = open_store(args.url, args.inline)
    gc.collect()
    gc.freeze()
    collector = CollectorWatch()
    ticker = Ticker(TICKERS)
    gevent.sleep(0.2)  # every ticker running before the database is made to wait
    if args.scenario == "sqlite-lock":
        result = sqlite_lock(store, args.url, args.concurrency, args.seconds)
    elif args.scenario == "pg-sleep":
        result = pg_sleep(store, args.concurrency, args.seconds)
    elif args.scenario == "wal":
        result = wal(store, args.url, args.concurrency)
    else:
        result = api(store, args.concurrency)
    gevent.sleep(0.1)
    ticker.stop()
    collector.stop()
    store.close()
    from chatapp.store.offload import psycopg_cooperates

    result.update(
        native_thread=store.native_thread,
        psycopg_cooperates=psycopg_cooperates() if args.scenario == "pg-sleep" else None,
        max_gap_ms=round(ticker.max_gap_s * 1000, 1),
        ticks=ticker.ticks,
        gc_max_ms=round(collector.max_s * 1000, 1),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
