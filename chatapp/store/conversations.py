"""Units of work on conversations: create, read, list, change, delete, and which branch is shown.

Each function takes the unit's `Session` (one transaction, see `Store.run`) and
returns records, never rows, so nothing is loaded after the unit ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from . import queries
from .errors import MessageNotFound
from .models import ConversationRow, MessageRow, new_id, utcnow
from .records import Conversation, ConversationView, Message, Role
from .titles import title_from


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


def create(session: Session, title: str | None, settings: Settings, owner_id: str | None) -> Conversation:
    now = utcnow()
    title = (title or "").strip() or None
    row = ConversationRow(
        id=new_id(),
        owner_id=owner_id,
        title=title,
        title_is_custom=title is not None,
        model=settings.model,
        system_prompt=settings.system_prompt,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row.record()


def get(session: Session, conversation_id: str) -> Conversation:
    return queries.conversation_row(session, conversation_id).record()


def read(session: Session, conversation_id: str, leaf_id: str | None) -> ConversationView:
    """The conversation and a branch: to `leaf_id`, or the one on display."""
    row = queries.conversation_row(session, conversation_id)
    tree = queries.load_tree(session, conversation_id)
    if leaf_id is not None and leaf_id not in tree:
        raise MessageNotFound(leaf_id)
    leaf = leaf_id if leaf_id is not None else queries.shown_leaf(row, tree)
    return ConversationView(row.record(), queries.branch(session, tree, leaf))


def list_page(
    session: Session, owner_id: str | None, before: datetime | None, before_id: str | None, limit: int
) -> list[Conversation]:
    """Newest first. `before` is the `updated_at` of the last one already shown; `before_id`, its id,
    also pages through conversations updated in the same microsecond."""
    owner = ConversationRow.owner_id.is_(None) if owner_id is None else ConversationRow.owner_id == owner_id
    query = select(ConversationRow).where(owner)
    if before is not None:
        older = ConversationRow.updated_at < before
        if before_id is not None:
            older = or_(older, and_(ConversationRow.updated_at == before, ConversationRow.id < before_id))
        query = query.where(older)
    query = query.order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc()).limit(limit)
    return [row.record() for row in session.scalars(query)]


def update(
    session: Session,
    conversation_id: str,
    title: str | Unset | None,
    settings: dict[str, object],
) -> Conversation:
    """Change the fields given. A title renames (no longer following the first message);
    None or "" as the title goes back to the automatic one."""
    row = queries.conversation_row(session, conversation_id)
    if title is not UNSET:
        title = (title or "").strip() or None
        row.title_is_custom = title is not None
        row.title = title if title is not None else _automatic_title(session, conversation_id)
    for name, value in settings.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.flush()
    return row.record()


def delete(session: Session, conversation_id: str) -> None:
    """Delete the conversation; the database deletes its messages (ON DELETE CASCADE)."""
    session.delete(queries.conversation_row(session, conversation_id))


def show(session: Session, conversation_id: str, message_id: str) -> list[Message]:
    """Display the branch through `message_id`, down to its newest leaf (choosing an alternative)."""
    row = queries.conversation_row(session, conversation_id)
    tree = queries.load_tree(session, conversation_id)
    if message_id not in tree:
        raise MessageNotFound(message_id)
    row.current_leaf_id = tree.newest_leaf_under(message_id)
    return queries.branch(session, tree, row.current_leaf_id)


def _automatic_title(session: Session, conversation_id: str) -> str | None:
    first = session.scalars(
        select(MessageRow.content)
        .where(
            MessageRow.conversation_id == conversation_id,
            MessageRow.parent_id.is_(None),
            MessageRow.role == Role.USER,
        )
        .order_by(MessageRow.created_at, MessageRow.id)
        .limit(1)
    ).first()
    return title_from(first) if first is not None else None
