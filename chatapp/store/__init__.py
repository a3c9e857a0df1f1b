"""The conversation store: conversations and their tree of messages in a SQL database.

SQLite by default (a file in Flask's instance folder), PostgreSQL when
`DATABASE_URL` says so; SQLAlchemy 2.x models (models.py), Alembic migrations
(migrate.py, migrations/), and `Store` (store.py), whose methods are safe to call
from any greenlet of a gevent worker, or any thread (offload.py says how). Nothing here knows
Flask or HTTP: the views map the typed errors (errors.py) to status codes.

At start-up, in each worker::

    url = database_url(os.environ.get("DATABASE_URL"), app.instance_path)
    upgrade_to_head(url)
    store = Store.open(url)
"""

from .engine import database_url, default_sqlite_url
from .errors import (
    ConversationNotFound,
    ConversationTooLong,
    InvalidParent,
    MessageNotFound,
    StoreError,
    WrongRole,
)
from .migrate import current_revision, downgrade, upgrade_to_head
from .records import Conversation, ConversationView, Message, Role, Status, Usage
from .store import UNSET, Store
from .turns import Turn

__all__ = [
    "UNSET",
    "Conversation",
    "ConversationNotFound",
    "ConversationTooLong",
    "ConversationView",
    "InvalidParent",
    "Message",
    "MessageNotFound",
    "Role",
    "Status",
    "Store",
    "StoreError",
    "Turn",
    "Usage",
    "WrongRole",
    "current_revision",
    "database_url",
    "default_sqlite_url",
    "downgrade",
    "upgrade_to_head",
]
