"""Where units of work run and on which connections (chatapp/store/offload.py, inline_first.py,
engine.py): SQLite from several threads, under a lock held elsewhere, never closed."""

from __future__ import annotations

import gc
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError

from chatapp.store import Store, database_url, upgrade_to_head
from chatapp.store.models import ConversationRow

from .steps import ask, message_count


def sqlite_store(folder: Path, busy_timeout_s: float = 10.0) -> Store:
    url = str(database_url(None, folder))
    upgrade_to_head(url)
    return Store.open(url, busy_timeout_s=busy_timeout_s)


def test_threads_may_share_a_sqlite_store(tmp_path: Path) -> None:
    """`flask run` serves from several threads: each connection is still used by its own thread only
    (sqlite3 checks, and would raise "SQLite objects created in a thread...")."""
    store = sqlite_store(tmp_path)
    conversation = store.create_conversation()

    def converse(n: int) -> int:
        for i in range(20):
            turn = ask(store, conversation.id, f"{n}.{i}", parent_id=None)  # a write
            store.read_conversation(conversation.id, leaf_id=turn.answer.id)  # a read
        return n

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert sorted(pool.map(converse, range(8))) == list(range(8))
        assert message_count(store) == 8 * 20 * 2
    finally:
        store.close()


def test_a_unit_that_found_sqlite_locked_leaves_the_store_usable(tmp_path: Path) -> None:
    """The connection is kept: a unit that failed at BEGIN must not leave it in a transaction."""
    store = sqlite_store(tmp_path, busy_timeout_s=0.05)
    conversation = store.create_conversation()
    other = sqlite3.connect(tmp_path / "chatapp.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"):
            ask(store, conversation.id, "while locked")
        assert store.get_conversation(conversation.id).title is None  # reads go on under WAL
        other.execute("COMMIT")

        assert ask(store, conversation.id, "after").context == [("user", "after")]
        assert [m.content for m in store.read_conversation(conversation.id).messages] == ["after", ""]
    finally:
        other.close()
        store.close()


def test_a_sqlite_store_never_closed_is_collected_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An app that never closes its store (a test's, a script's): collecting it must not touch its
    connections from the collecting thread, which sqlite3 refuses (and SQLAlchemy logs as errors)."""
    store = sqlite_store(tmp_path)
    store.create_conversation()

    del store
    gc.collect()

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_sqlite_unit_that_writes_must_say_so(tmp_path: Path) -> None:
    """Reads run on a connection of their own that refuses writes: a write there would take the
    write lock mid-transaction, where SQLite fails at once instead of waiting for it."""
    store = sqlite_store(tmp_path)
    try:
        with pytest.raises(OperationalError, match="readonly"):
            store.run(lambda c: c.execute(delete(ConversationRow)))
    finally:
        store.close()
