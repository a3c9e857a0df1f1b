"""The store's migrations (chatapp/store/migrate.py) on SQLite and real PostgreSQL, from an empty database."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from chatapp.store import Outcome, Status, Store, current_revision, database_url, downgrade, upgrade_to_head
from chatapp.store.migrate import MIGRATIONS, upgrade
from chatapp.store.models import Base
from harness.postgres import PostgresServer
from harness.processes import ROOT

HEAD = "0001"
TABLES = {"conversations", "messages"}

# A later migration, as the next one may well be: a column added to `conversations`, which
# SQLite can only do by rebuilding the table (copy it, drop the original, rename the copy).
REBUILDING_MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "0001"


def upgrade():
    rebuild = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("conversations", recreate=rebuild) as batch:
        batch.add_column(sa.Column("pinned", sa.Boolean(), nullable=True))


def downgrade():
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("pinned")
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database with nothing in it."""
    if request.param == "sqlite":
        return str(database_url(None, tmp_path / "instance"))
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"m{uuid.uuid4().hex[:12]}")


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def fill(url: str) -> tuple[str, list[str]]:
    """A conversation with a question, a stopped answer and a regenerated one; its id and message ids."""
    store = Store.open(url)
    try:
        conversation = store.create_conversation(system_prompt="Be kind.")
        first = store.ask(conversation.id, "hello", model="m", default_model="m", stream_id="a")
        store.finish_answer(first.answer.id, "hel", None, Outcome(Status.STOPPED))
        second = store.ask_again(
            conversation.id, first.answer.id, model="m", default_model="m", stream_id="b"
        )
        return conversation.id, [first.question_id, first.answer.id, second.answer.id]
    finally:
        store.close()


def test_migrations_go_from_empty_to_head_to_base_and_back(empty_url: str) -> None:
    assert current_revision(empty_url) is None

    upgrade_to_head(empty_url)
    assert (current_revision(empty_url), tables(empty_url)) == (HEAD, TABLES)

    downgrade(empty_url, "base")
    assert (current_revision(empty_url), tables(empty_url)) == (None, set())

    upgrade_to_head(empty_url)
    assert (current_revision(empty_url), tables(empty_url)) == (HEAD, TABLES)


def test_upgrading_a_database_at_head_changes_nothing(empty_url: str) -> None:
    upgrade_to_head(empty_url)
    conversation_id, message_ids = fill(empty_url)

    upgrade_to_head(empty_url)

    store = Store.open(empty_url)
    try:
        assert store.get_conversation(conversation_id).system_prompt == "Be kind."
        alternatives = store.read_conversation(conversation_id).messages[-1].alternatives
    finally:
        store.close()
    assert alternatives == tuple(message_ids[1:])


def test_a_later_migration_that_rebuilds_a_table_keeps_every_row(empty_url: str, tmp_path: Path) -> None:
    """With SQLite's foreign keys on, dropping `conversations` while rebuilding it would cascade
    into deleting every message: migrations run with them off."""
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9001_pinned.py").write_text(REBUILDING_MIGRATION)
    upgrade_to_head(empty_url)
    conversation_id, message_ids = fill(empty_url)

    upgrade(empty_url, "9001", migrations=migrations)

    assert current_revision(empty_url) == "9001"
    store = Store.open(empty_url)
    try:
        shown = store.read_conversation(conversation_id)
        alternatives = shown.messages[-1].alternatives
        context = store.ask_again(
            conversation_id, message_ids[2], model=None, default_model="m", stream_id="c"
        ).context
    finally:
        store.close()
    assert [m.id for m in shown.messages] == [message_ids[0], message_ids[2]]
    assert alternatives == tuple(message_ids[1:])
    assert context == [("system", "Be kind."), ("user", "hello")]
    downgrade(empty_url, HEAD, migrations=migrations)
    assert current_revision(empty_url) == HEAD


def test_the_migrated_schema_matches_the_models(empty_url: str) -> None:
    upgrade_to_head(empty_url)

    engine = create_engine(empty_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_workers_starting_together_migrate_once(empty_url: str) -> None:
    """Every gunicorn worker calls upgrade_to_head at start: they must take turns, not collide."""
    # Each worker imports, says it is ready, and migrates when told: all four at the same moment.
    script = (
        "import sys; from chatapp.store import upgrade_to_head; "
        "print('ready', flush=True); sys.stdin.readline(); upgrade_to_head(sys.argv[1])"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    errors = [worker.communicate(timeout=60)[1] for worker in workers]

    failures = [error for worker, error in zip(workers, errors, strict=True) if worker.returncode != 0]
    assert failures == []
    assert current_revision(empty_url) == HEAD
