"""The database engine: which database `DATABASE_URL` names, and how each connection is set up.

Unset, the store is a SQLite file in Flask's instance folder, created on first
start, in WAL mode (readers never wait for the writer), with foreign keys on (so
deleting a conversation deletes its messages) and a busy timeout (a write waits
for another process's write instead of failing at once). `postgresql://` and
`postgres://` URLs are read as `postgresql+psycopg://` (psycopg 3).

SQLite gets no connection pool: each unit of work opens its connection and
closes it in the thread that ran it (see `offload.py` for why that matters).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

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
    foreign_keys: bool = True,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
) -> Engine:
    """An engine for the store. `pooled=False` opens a connection per unit of work (PostgreSQL only:
    SQLite never pools). `foreign_keys=False` is for migrations only (see `migrate.py`)."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, foreign_keys=foreign_keys, busy_timeout_s=busy_timeout_s)
    options: dict[str, Any] = {"connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S}}
    if pooled:
        options["pool_pre_ping"] = True  # a server restart leaves dead connections in the pool
    else:
        options["poolclass"] = NullPool
    return create_engine(url, **options)


def _sqlite_engine(url: URL, *, foreign_keys: bool, busy_timeout_s: float) -> Engine:
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        # Each unit of work has its own connection: an in-memory database would start empty each time.
        raise ValueError("the store needs a SQLite file, not an in-memory database")
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # sqlite3's own transaction handling (BEGIN before the first write only) is switched off,
        # and SQLAlchemy emits BEGIN itself (_on_begin): the recipe in SQLAlchemy's SQLite docs.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        # With WAL, NORMAL survives a killed process; only a power cut may lose the last commits.
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    _use_wal(engine, busy_timeout_s)
    return engine


def _use_wal(engine: Engine, timeout_s: float) -> None:
    """Create the file and switch it to WAL; the mode is kept in the file, so once is enough.

    The switch needs the database to itself and SQLite does not wait on its busy timeout for
    it: several workers opening a new file at once get "database is locked". So: only when
    not in WAL yet, and retried until the timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        connection = engine.raw_connection()
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
