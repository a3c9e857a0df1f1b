"""The database engine: which database `DATABASE_URL` names, and how each connection is set up.

Unset, the store is a SQLite file in Flask's instance folder, created on first
start, in WAL mode (readers never wait for the writer), with foreign keys on (so
deleting a conversation deletes its messages) and a busy timeout (a write waits
for another process's write instead of failing at once). `postgresql://` and
`postgres://` URLs are read as `postgresql+psycopg://` (psycopg 3).

A SQLite store engine holds ONE connection, opened on first use and kept
(`StaticPool`): opening one costs more than the work (the PRAGMAs, and closing
the last connection of a WAL database checkpoints the WAL). It is for one thread
only, the one that runs that engine's units (offload.py): sqlite3's own
`check_same_thread` stays on, so a second thread touching it raises instead of
sharing it. Migrations ask for `pooled=False`: a connection per use, closed after.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, StaticPool

SQLITE_FILE_NAME = "chatapp.sqlite3"
DEFAULT_BUSY_TIMEOUT_S = 10.0
PG_CONNECT_TIMEOUT_S = 10

# An execution option: a unit of work that writes. SQLite then takes the write lock at
# BEGIN (BEGIN IMMEDIATE), waiting on the busy timeout; a deferred transaction that read
# first and writes later fails at once with SQLITE_BUSY when another writer got there.
WRITE_OPTION = "chatapp_write"


def default_sqlite_url(instance_path: str | Path) -> URL:
    """The default database: `chatapp.sqlite3` in the given folder (Flask's instance folder)."""
    return URL.create("sqlite", database=str(Path(instance_path) / SQLITE_FILE_NAME))


def database_url(url: str | URL | None, instance_path: str | Path) -> URL:
    """`DATABASE_URL` when set (PostgreSQL through psycopg 3), else the SQLite file in `instance_path`."""
    if url is None or (isinstance(url, str) and not url.strip()):
        return default_sqlite_url(instance_path)
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_store_engine(
    url: str | URL,
    *,
    pooled: bool = True,
    read_only: bool = False,
    waits: bool = True,
    foreign_keys: bool = True,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
) -> Engine:
    """An engine for the store. `pooled=False` opens a connection per use. SQLite pooled: one
    persistent connection, for one thread (see the module's docstring); `read_only`: it refuses
    writes; `waits=False`: it never waits for a lock (SQLITE_BUSY at once) and never checkpoints
    the WAL (inline_first.py). `foreign_keys=False` is for migrations only (see `migrate.py`)."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(
            url,
            pooled=pooled,
            read_only=read_only,
            waits=waits,
            foreign_keys=foreign_keys,
            busy_timeout_s=busy_timeout_s,
        )
    options: dict[str, Any] = {"connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S}}
    if pooled:
        options["pool_pre_ping"] = True  # a server restart leaves dead connections in the pool
    else:
        options["poolclass"] = NullPool
    return create_engine(url, **options)


def _sqlite_engine(
    url: URL, *, pooled: bool, read_only: bool, waits: bool, foreign_keys: bool, busy_timeout_s: float
) -> Engine:
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        # The store's reads and writes have connections of their own: each would see its own empty database.
        raise ValueError("the store needs a SQLite file, not an in-memory database")
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    _use_wal(url.database, busy_timeout_s)
    engine = create_engine(
        url,
        poolclass=StaticPool if pooled else NullPool,
        # SQLAlchemy turns the check off for file databases (for its QueuePool); the store's
        # connections each belong to one thread, and sqlite3 is asked to enforce it.
        connect_args={"timeout": busy_timeout_s if waits else 0, "check_same_thread": True},
        # Every unit ends its transaction itself. The pool's rollback on return would also run
        # when a store that was never closed is garbage-collected, in whatever thread that is.
        pool_reset_on_return=None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # sqlite3's own transaction handling (BEGIN before the first write only) is switched off,
        # and SQLAlchemy emits BEGIN itself (_on_begin): the recipe in SQLAlchemy's SQLite docs.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        # With WAL, NORMAL survives a killed process; only a power cut may lose the last commits.
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")
        if read_only:
            dbapi_connection.execute("PRAGMA query_only = ON")
        if not waits:
            # Checkpointing copies the WAL into the database file and fsyncs it: slow.
            dbapi_connection.execute("PRAGMA wal_autocheckpoint = 0")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _use_wal(path: str, timeout_s: float) -> None:
    """Create the file and switch it to WAL; the mode is kept in the file, so once is enough.

    On a connection of its own, closed at once: the engine's pooled connection must be
    opened by the thread that will use it. The switch needs the database to itself and
    SQLite does not wait on its busy timeout for it: several workers opening a new file
    at once get "database is locked". So: only when not in WAL yet, and retried until
    the timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        connection = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
        try:
            # Outside any transaction: SQLite refuses to change the journal mode inside one.
            cursor = connection.cursor()
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            if cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        finally:
            connection.close()
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("could not switch the SQLite database to WAL mode")
        time.sleep(0.05)
