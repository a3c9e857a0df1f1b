"""Alembic's environment for the store: runs on the connection `chatapp.store.migrate` opened and locked.

There is no alembic.ini and no URL here: use `chatapp.store.migrate` (or
`python -m chatapp.store.migrate`), which holds the lock and the transaction.
"""

from __future__ import annotations

from alembic import context

from chatapp.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the store's migrations with chatapp.store.migrate, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by rebuilding it: Alembic's batch mode, for every ALTER to come.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
