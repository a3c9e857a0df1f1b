"""Lookups shared by the units of work: a row or a typed error, a conversation's tree, a branch, records.

Units run SQLAlchemy Core statements on the unit's `Connection` (see `Store.run`),
never the ORM: on SQLite, with its connection kept open, loading and flushing ORM
objects cost more than the database work. The statements every answer runs are
built once, at import, with bound parameters: SQLAlchemy computes a statement's
cache key once per object, and finds its compiled form in the engine's cache.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import Row, bindparam, select
from sqlalchemy.engine import Connection

from .errors import ConversationNotFound, MessageNotFound
from .models import CONVERSATIONS, MESSAGES
from .records import Conversation, Message, Role, Status, Usage
from .tree import Node, Tree

C, M = CONVERSATIONS, MESSAGES

# A row of any columns.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

CONVERSATION = select(C).where(C.c.id == bindparam("conversation_id"))
MESSAGE = select(M).where(M.c.id == bindparam("message_id"))
TREE = select(M.c.id, M.c.parent_id, M.c.role, M.c.created_at).where(
    M.c.conversation_id == bindparam("conversation_id")
)
MESSAGES_BY_ID = select(M).where(M.c.id.in_(bindparam("message_ids", expanding=True)))
_SAME_ROLE = (M.c.conversation_id == bindparam("conversation_id"), M.c.role == bindparam("role"))
ALTERNATIVES = (
    select(M.c.id)
    .where(*_SAME_ROLE, M.c.parent_id == bindparam("parent_id"))
    .order_by(M.c.created_at, M.c.id)
)
ROOT_ALTERNATIVES = (
    select(M.c.id).where(*_SAME_ROLE, M.c.parent_id.is_(None)).order_by(M.c.created_at, M.c.id)
)


def conversation_row(connection: Connection, conversation_id: str) -> AnyRow:
    row = connection.execute(CONVERSATION, {"conversation_id": conversation_id}).first()
    if row is None:
        raise ConversationNotFound(conversation_id)
    return row


def message_row(connection: Connection, conversation_id: str, message_id: str) -> AnyRow:
    """The message, which must belong to this conversation (else `MessageNotFound`)."""
    row = connection.execute(MESSAGE, {"message_id": message_id}).first()
    if row is None or row.conversation_id != conversation_id:
        raise MessageNotFound(message_id)
    return row


def load_tree(connection: Connection, conversation_id: str) -> Tree:
    """The skeleton of every message of the conversation (no text), in one query."""
    rows = connection.execute(TREE, {"conversation_id": conversation_id})
    return Tree(Node(*row) for row in rows)


def alternatives(
    connection: Connection, conversation_id: str, parent_id: str | None, role: str
) -> tuple[str, ...]:
    """Ids of the messages with this parent and role, oldest first."""
    found = connection.scalars(
        ROOT_ALTERNATIVES if parent_id is None else ALTERNATIVES,
        {"conversation_id": conversation_id, "parent_id": parent_id, "role": role},
    )
    return tuple(found)


def shown_leaf(current_leaf_id: str | None, tree: Tree) -> str | None:
    """The leaf on display: the one chosen, or the newest when none was (or it is gone)."""
    if current_leaf_id in tree:
        return current_leaf_id
    return tree.newest_leaf()


def branch(connection: Connection, tree: Tree, leaf_id: str | None) -> list[Message]:
    """The full messages from the root to `leaf_id`, each with its alternatives."""
    if leaf_id is None:
        return []
    path = tree.path_to(leaf_id)
    found = connection.execute(MESSAGES_BY_ID, {"message_ids": [node.id for node in path]})
    rows = {row.id: row for row in found}
    return [message_record(rows[node.id], tree.alternatives(node.id)) for node in path]


def conversation_record(row: AnyRow) -> Conversation:
    return Conversation(
        id=row.id,
        owner_id=row.owner_id,
        title=row.title,
        title_is_custom=bool(row.title_is_custom),
        model=row.model,
        system_prompt=row.system_prompt,
        temperature=row.temperature,
        max_tokens=row.max_tokens,
        current_leaf_id=row.current_leaf_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def message_record(row: AnyRow, alternatives: tuple[str, ...]) -> Message:
    usage = None
    if row.total_tokens is not None:
        usage = Usage(
            prompt_tokens=row.prompt_tokens or 0,
            completion_tokens=row.completion_tokens or 0,
            total_tokens=row.total_tokens,
            estimated=bool(row.usage_estimated),
        )
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        parent_id=row.parent_id,
        role=Role(row.role),
        content=row.content,
        reasoning=row.reasoning,
        status=Status(row.status),
        finish_reason=row.finish_reason,
        error_code=row.error_code,
        error_message=row.error_message,
        model=row.model,
        usage=usage,
        ttft_ms=row.ttft_ms,
        duration_ms=row.duration_ms,
        stream_id=row.stream_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        alternatives=alternatives,
    )
