"""Lookups shared by the units of work: a row or a typed error, a conversation's tree, a branch.

Every function takes the unit's `Session` and returns rows or records read in it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import ConversationNotFound, MessageNotFound
from .models import ConversationRow, MessageRow
from .records import Message
from .tree import Node, Tree


def conversation_row(session: Session, conversation_id: str) -> ConversationRow:
    row = session.get(ConversationRow, conversation_id)
    if row is None:
        raise ConversationNotFound(conversation_id)
    return row


def message_row(session: Session, conversation_id: str, message_id: str) -> MessageRow:
    """The message, which must belong to this conversation (else `MessageNotFound`)."""
    row = session.get(MessageRow, message_id)
    if row is None or row.conversation_id != conversation_id:
        raise MessageNotFound(message_id)
    return row


def load_tree(session: Session, conversation_id: str) -> Tree:
    """The skeleton of every message of the conversation (no text), in one query."""
    rows = session.execute(
        select(MessageRow.id, MessageRow.parent_id, MessageRow.role, MessageRow.created_at).where(
            MessageRow.conversation_id == conversation_id
        )
    )
    return Tree(Node(*row) for row in rows)


def alternatives(session: Session, row: MessageRow) -> tuple[str, ...]:
    """Ids of the messages with the same parent and role as `row`, itself included, oldest first."""
    same_parent = (
        MessageRow.parent_id.is_(None) if row.parent_id is None else MessageRow.parent_id == row.parent_id
    )
    ids = session.scalars(
        select(MessageRow.id)
        .where(MessageRow.conversation_id == row.conversation_id, same_parent, MessageRow.role == row.role)
        .order_by(MessageRow.created_at, MessageRow.id)
    )
    return tuple(ids)


def shown_leaf(conversation: ConversationRow, tree: Tree) -> str | None:
    """The leaf on display: the one chosen, or the newest when none was (or it is gone)."""
    if conversation.current_leaf_id in tree:
        return conversation.current_leaf_id
    return tree.newest_leaf()


def branch(session: Session, tree: Tree, leaf_id: str | None) -> list[Message]:
    """The full messages from the root to `leaf_id`, each with its alternatives."""
    if leaf_id is None:
        return []
    path = tree.path_to(leaf_id)
    rows = {
        row.id: row
        for row in session.scalars(select(MessageRow).where(MessageRow.id.in_([node.id for node in path])))
    }
    return [rows[node.id].record(tree.alternatives(node.id)) for node in path]
