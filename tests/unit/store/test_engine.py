"""Which database `DATABASE_URL` names (chatapp/store/engine.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from chatapp.store import Store, database_url


@pytest.mark.parametrize(
    ("given", "url"),
    [
        (None, "sqlite:////srv/instance/chatapp.sqlite3"),
        ("", "sqlite:////srv/instance/chatapp.sqlite3"),
        ("postgresql://u@db:5432/chat", "postgresql+psycopg://u@db:5432/chat"),
        ("postgres://u@db/chat", "postgresql+psycopg://u@db/chat"),
        ("postgresql+psycopg://u@db/chat", "postgresql+psycopg://u@db/chat"),
        ("sqlite:////data/other.db", "sqlite:////data/other.db"),
    ],
)
def test_database_url_defaults_to_sqlite_in_the_instance_folder_and_reads_postgres_as_psycopg(
    given: str | None, url: str
) -> None:
    assert database_url(given, "/srv/instance") == make_url(url)


def test_an_in_memory_sqlite_database_is_refused() -> None:
    with pytest.raises(ValueError, match="SQLite file"):
        Store.open("sqlite://")
