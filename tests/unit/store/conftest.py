"""The `store` fixture: each test that takes it runs twice, on a SQLite file and on a real
PostgreSQL server (harness/postgres.py), starting from an empty database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from chatapp.store import Store, database_url, upgrade_to_head
from chatapp.store.models import ConversationRow
from harness.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """A PostgreSQL database for the store's tests, migrated once; each test empties it."""
    url = postgres.create_database("store_tests")
    upgrade_to_head(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    if request.param == "sqlite":
        url = str(database_url(None, tmp_path_factory.mktemp("instance")))
        upgrade_to_head(url)
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store.open(url)
    store.run(lambda s: s.execute(delete(ConversationRow)), write=True)
    yield store
    store.close()
