"""The conversation store: conversations and their tree of messages in a SQL database.

SQLite by default (a file in Flask's instance folder), PostgreSQL when `DATABASE_URL` says so;
SQLAlchemy 2.x models (models.py), Alembic migrations (migrate.py, migrations/), and `Store`
(store.py), whose methods are safe to call from any greenlet of a gevent worker, or any thread
(offload.py says how). Its units of work: conversations.py (conversations, branches, one
message), turns.py (a question and its answer's start, another answer), answers.py (an answer's
checkpoints and end), orphans.py (answers a dead worker left). Nothing here knows Flask or HTTP:
chatapp/errors.py turns the typed errors (errors.py) into HTTP statuses.

At start-up, once per serving process, after gevent patched it (chatapp/startup.py)::

    url = database_url(settings.database_url, app.instance_path)  # DATABASE_URL, else SQLite
    upgrade_to_head(url)
    store = Store.open(url)
    # Answers a dead worker left `streaming`; then again every few checkpoints (streaming/recording.py).
    store.mark_orphans_interrupted(orphan_age, is_live=streams.is_running)
"""

from .answers import Outcome
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
from .store import DEFAULT_PAGE, UNSET, Store
from .turns import NOT_AN_ANSWER, NOT_IN_CONVERSATION, Turn

__all__ = [
    "DEFAULT_PAGE",
    "NOT_AN_ANSWER",
    "NOT_IN_CONVERSATION",
    "UNSET",
    "Conversation",
    "ConversationNotFound",
    "ConversationTooLong",
    "ConversationView",
    "InvalidParent",
    "Message",
    "MessageNotFound",
    "Outcome",
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
