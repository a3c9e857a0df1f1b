"""The schema's migrations (Alembic, in `migrations/`), run from Python: no alembic.ini anywhere.

`upgrade_to_head(url)` runs at app start, in every gunicorn worker at once: a lock
makes them take turns (a file lock beside a SQLite database, a PostgreSQL
advisory lock held by the migrating transaction), so the first upgrades and the
others find the schema at head. The whole upgrade is one transaction on both
databases (SQLite's DDL is transactional too), so a failed one changes nothing.

SQLite migrations run with foreign keys off: Alembic's batch mode alters a table
by copying it and dropping the original, and with foreign keys on, dropping
`conversations` would cascade into deleting every message. The transaction ends
with `PRAGMA foreign_key_check`, so a migration cannot leave a dangling reference.

Blocking: call these at start-up, before serving, not from a request.
`python -m chatapp.store --help` runs them by hand (DATABASE_URL), and writes new ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.engine import URL, Connection, make_url

from .engine import WRITE_OPTION, create_store_engine, default_sqlite_url

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number, the same in every worker: the key of the advisory lock.
PG_MIGRATION_LOCK = 0x63686174_61707031  # "chatapp1"

Target = str | URL | Engine


def upgrade_to_head(target: Target) -> None:
    """Bring the database's schema to the newest revision, creating it when empty."""
    _migrate(target, lambda config: command.upgrade(config, "head"))


def upgrade(target: Target, revision: str = "head", *, migrations: Path = MIGRATIONS) -> None:
    """Up to `revision`. `migrations`: another folder of revisions (the tests add one of their own)."""
    _migrate(target, lambda config: command.upgrade(config, revision), migrations)


def downgrade(target: Target, revision: str = "base", *, migrations: Path = MIGRATIONS) -> None:
    """Back to `revision` ("base": no tables at all). Loses what newer revisions store."""
    _migrate(target, lambda config: command.downgrade(config, revision), migrations)


def current_revision(target: Target) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    engine = _migration_engine(target)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def alembic_config(connection: Connection | None = None, migrations: Path = MIGRATIONS) -> Config:
    """Alembic's configuration, built in code; `migrations/env.py` uses the connection given here."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def _migrate(target: Target, action: Callable[[Config], None], migrations: Path = MIGRATIONS) -> None:
    url = target.url if isinstance(target, Engine) else make_url(target)
    # The file lock first: the first worker creates the SQLite file and switches it to WAL alone.
    with _file_lock(url):
        engine = _migration_engine(url)
        try:
            with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
                if engine.dialect.name == "postgresql":
                    # Released when this transaction ends: every other worker waits here until then.
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
                action(alembic_config(connection, migrations))
                if engine.dialect.name == "sqlite":
                    _check_foreign_keys(connection)
        finally:
            engine.dispose()


def _migration_engine(target: Target) -> Engine:
    """A connection-per-use engine for migrations, with SQLite's foreign keys off (see the docstring)."""
    url = target.url if isinstance(target, Engine) else make_url(target)
    return create_store_engine(url, pooled=False, foreign_keys=False)


@contextlib.contextmanager
def _file_lock(url: URL) -> Iterator[None]:
    """For SQLite, an exclusive lock on `<database>.migrate-lock` while migrating; nothing otherwise.

    SQLite's own write lock would serialise migrations too, but a worker waits for it only as
    long as the busy timeout; a long migration (a big table rebuilt) must not fail the others."""
    if url.get_backend_name() != "sqlite" or not url.database:
        yield
        return
    path = Path(url.database).with_name(Path(url.database).name + ".migrate-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def new_revision(message: str, migrations: Path = MIGRATIONS) -> None:
    """Write `migrations/versions/<rev>_<message>.py`: what models.py has that the migrations lack,
    found by comparing the models with a scratch SQLite database upgraded to head. Review it."""
    with tempfile.TemporaryDirectory() as scratch:
        url = default_sqlite_url(scratch)
        upgrade(url, migrations=migrations)
        _migrate(url, lambda config: _autogenerate(config, message), migrations)


def _autogenerate(config: Config, message: str) -> None:
    command.revision(config, message, autogenerate=True)


def _check_foreign_keys(connection: Connection) -> None:
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if dangling:
        raise RuntimeError(f"a migration left references to missing rows: {dangling[:5]}")
