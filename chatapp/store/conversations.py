"""Units of work on conversations: create, read (the conversation, a branch, one message), list,
change, delete, and which branch is shown.

Each function takes the unit's `Connection` (one transaction, see `Store.run`)
and returns records, never rows, so nothing is read after the unit ends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Connection

from . import queries
from .errors import ConversationNotFound, MessageNotFound
from .models import CONVERSATIONS, MESSAGES, new_id, utcnow
from .records import Conversation, ConversationView, Message, Role
from .titles import title_from

C, M = CONVERSATIONS, MESSAGES

_DELETE = C.delete().where(C.c.id == bindparam("conversation_id"))
_SHOW = C.update().where(C.c.id == bindparam("conversation_id"))
_FIRST_QUESTION = (
    select(M.c.content)
    .where(
        M.c.conversation_id == bindparam("conversation_id"),
        M.c.parent_id.is_(None),
        M.c.role == Role.USER.value,
    )
    .order_by(M.c.created_at, M.c.id)
    .limit(1)
)


class Unset(Enum):
    """A field that `update` leaves as it is (None would clear it)."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True)
class Settings:
    """A conversation's model settings; None means the server's default."""

    model: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


def create(
    connection: Connection, title: str | None, settings: Settings, owner_id: str | None
) -> Conversation:
    now = utcnow()
    title = (title or "").strip() or None
    conversation = Conversation(
        id=new_id(),
        owner_id=owner_id,
        title=title,
        title_is_custom=title is not None,
        model=settings.model,
        system_prompt=settings.system_prompt,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        current_leaf_id=None,
        created_at=now,
        updated_at=now,
    )
    connection.execute(C.insert(), asdict(conversation))
    return conversation


def get(connection: Connection, conversation_id: str) -> Conversation:
    return queries.conversation_record(queries.conversation_row(connection, conversation_id))


def read(connection: Connection, conversation_id: str, leaf_id: str | None) -> ConversationView:
    """The conversation and a branch: to `leaf_id`, or the one on display."""
    row = queries.conversation_row(connection, conversation_id)
    tree = queries.load_tree(connection, conversation_id)
    if leaf_id is not None and leaf_id not in tree:
        raise MessageNotFound(leaf_id)
    leaf = leaf_id if leaf_id is not None else queries.shown_leaf(row.current_leaf_id, tree)
    return ConversationView(queries.conversation_record(row), queries.branch(connection, tree, leaf))


def get_message(connection: Connection, conversation_id: str, message_id: str) -> Message:
    """One message of this conversation (else `MessageNotFound`), with its alternatives."""
    row = queries.message_row(connection, conversation_id, message_id)
    siblings = queries.alternatives(connection, conversation_id, row.parent_id, row.role)
    return queries.message_record(row, siblings)


def list_page(
    connection: Connection, owner_id: str | None, before: datetime | None, before_id: str | None, limit: int
) -> list[Conversation]:
    """Newest first. `before` is the `updated_at` of the last one already shown; `before_id`, its id,
    also pages through conversations updated in the same microsecond."""
    owner = C.c.owner_id.is_(None) if owner_id is None else C.c.owner_id == owner_id
    query = select(C).where(owner)
    if before is not None:
        older = C.c.updated_at < before
        if before_id is not None:
            older = or_(older, and_(C.c.updated_at == before, C.c.id < before_id))
        query = query.where(older)
    query = query.order_by(C.c.updated_at.desc(), C.c.id.desc()).limit(limit)
    return [queries.conversation_record(row) for row in connection.execute(query)]


def update(
    connection: Connection,
    conversation_id: str,
    title: str | Unset | None,
    settings: dict[str, object],
) -> Conversation:
    """Change the fields given. A title renames (no longer following the first message);
    None or "" as the title goes back to the automatic one."""
    row = queries.conversation_row(connection, conversation_id)
    changes: dict[str, Any] = dict(settings)
    if title is not UNSET:
        title = (title or "").strip() or None
        changes["title_is_custom"] = title is not None
        changes["title"] = title if title is not None else _automatic_title(connection, conversation_id)
    changes["updated_at"] = utcnow()
    connection.execute(C.update().where(C.c.id == conversation_id).values(**changes))
    return replace(queries.conversation_record(row), **changes)


def delete(connection: Connection, conversation_id: str) -> None:
    """Delete the conversation; the database deletes its messages (ON DELETE CASCADE)."""
    if connection.execute(_DELETE, {"conversation_id": conversation_id}).rowcount == 0:
        raise ConversationNotFound(conversation_id)


def show(connection: Connection, conversation_id: str, message_id: str) -> list[Message]:
    """Display the branch through `message_id`, down to its newest leaf (choosing an alternative)."""
    queries.conversation_row(connection, conversation_id)
    tree = queries.load_tree(connection, conversation_id)
    if message_id not in tree:
        raise MessageNotFound(message_id)
    leaf = tree.newest_leaf_under(message_id)
    connection.execute(_SHOW, {"conversation_id": conversation_id, "current_leaf_id": leaf})
    return queries.branch(connection, tree, leaf)


def _automatic_title(connection: Connection, conversation_id: str) -> str | None:
    first = connection.scalar(_FIRST_QUESTION, {"conversation_id": conversation_id})
    return title_from(first) if first is not None else None
