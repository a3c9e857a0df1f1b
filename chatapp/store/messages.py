"""Units of work on messages: a question, an answer's start, checkpoints and end, orphans, the context.

An answer is written while it streams: `start_answer` creates it `streaming`,
`checkpoint` saves its text so far (the caller: at most once a second, never per
token), `finish` writes its final state. A worker killed mid-answer leaves it
`streaming`; `find_orphans` and `mark_interrupted` turn it `interrupted`, text kept.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import queries
from .errors import InvalidParent, MessageNotFound, WrongRole
from .models import MessageRow, new_id, utcnow
from .records import FINAL_STATUSES, Message, Role, Status, Usage
from .titles import title_from

# A checkpoint or the end may also land on an answer marked interrupted by mistake (its
# stream was alive after all, only late): the live stream's write wins.
_WRITABLE = (Status.STREAMING, Status.INTERRUPTED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an answer ended: everything `finish` writes besides its text."""

    status: Status
    finish_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    usage: Usage | None = None
    model: str | None = None  # the model the upstream says answered; None keeps the one asked
    ttft_ms: int | None = None
    duration_ms: int | None = None


def add_question(
    session: Session, conversation_id: str, content: str, parent_id: str | None, at_root: bool
) -> Message:
    """A user message after `parent_id`; when None, after the branch on display, or `at_root`: a
    new first message."""
    conversation = queries.conversation_row(session, conversation_id)
    if at_root:
        if parent_id is not None:
            raise ValueError("a message at the root has no parent")
    elif parent_id is None:
        parent_id = conversation.current_leaf_id
    elif _in_conversation(session, conversation_id, parent_id) is None:
        raise InvalidParent(parent_id, "it is not a message of this conversation")
    return _add(session, conversation_id, parent_id, Role.USER, content)


def edit_question(session: Session, conversation_id: str, message_id: str, content: str) -> Message:
    """A new version of a user message: a sibling with the same parent, shown from now on."""
    original = queries.message_row(session, conversation_id, message_id)
    if original.role != Role.USER:
        raise WrongRole(message_id, Role.USER)
    return _add(session, conversation_id, original.parent_id, Role.USER, content)


def start_answer(
    session: Session, conversation_id: str, question_id: str, model: str | None, stream_id: str
) -> Message:
    """An assistant message, `streaming`, answering `question_id`; a second one is an alternative."""
    question = _in_conversation(session, conversation_id, question_id)
    if question is None:
        raise InvalidParent(question_id, "it is not a message of this conversation")
    if question.role != Role.USER:
        raise InvalidParent(question_id, "an answer follows a user message")
    return _add(session, conversation_id, question_id, Role.ASSISTANT, "", model=model, stream_id=stream_id)


def regenerate(
    session: Session, conversation_id: str, answer_id: str, model: str | None, stream_id: str
) -> Message:
    """A new alternative to the assistant message `answer_id`: another answer to its question."""
    answer = queries.message_row(session, conversation_id, answer_id)
    if answer.role != Role.ASSISTANT or answer.parent_id is None:
        raise WrongRole(answer_id, Role.ASSISTANT)
    return start_answer(session, conversation_id, answer.parent_id, model, stream_id)


def checkpoint(session: Session, message_id: str, content: str, reasoning: str | None) -> bool:
    """Save a streaming answer's text so far; False when it has already ended (nothing written)."""
    written = session.scalars(
        update(MessageRow)
        .where(MessageRow.id == message_id, MessageRow.status.in_(_WRITABLE))
        .values(content=content, reasoning=reasoning, status=Status.STREAMING, updated_at=utcnow())
        .returning(MessageRow.id)
    ).first()
    return written is not None


def finish(
    session: Session, message_id: str, content: str, reasoning: str | None, outcome: Outcome
) -> Message:
    """Write an answer's final state. An answer that already ended is left as it was (and returned)."""
    if outcome.status not in FINAL_STATUSES:
        raise ValueError(f"an answer ends as one of {sorted(FINAL_STATUSES)}, not {outcome.status!r}")
    row = session.get(MessageRow, message_id)
    if row is None:
        raise MessageNotFound(message_id)
    if row.status in _WRITABLE:
        now = utcnow()
        row.content, row.reasoning, row.status = content, reasoning, outcome.status
        row.finish_reason = outcome.finish_reason
        row.error_code, row.error_message = outcome.error_code, outcome.error_message
        row.ttft_ms, row.duration_ms = outcome.ttft_ms, outcome.duration_ms
        row.model = outcome.model or row.model
        if outcome.usage is not None:
            usage = outcome.usage
            row.prompt_tokens, row.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            row.total_tokens, row.usage_estimated = usage.total_tokens, usage.estimated
        row.stream_id = None
        row.updated_at = now
        queries.conversation_row(session, row.conversation_id).updated_at = now
        session.flush()
    return row.record(queries.alternatives(session, row))


def find_orphans(
    session: Session, cutoff: datetime, conversation_id: str | None
) -> list[tuple[str, str | None]]:
    """(id, stream_id) of the answers still `streaming` and last written before `cutoff`."""
    query = select(MessageRow.id, MessageRow.stream_id).where(
        MessageRow.status == Status.STREAMING, MessageRow.updated_at < cutoff
    )
    if conversation_id is not None:
        query = query.where(MessageRow.conversation_id == conversation_id)
    return [(row.id, row.stream_id) for row in session.execute(query)]


def mark_interrupted(session: Session, message_ids: Collection[str], cutoff: datetime) -> list[str]:
    """Mark these orphans `interrupted`, their text as last saved; the ids really marked.

    The conditions are checked again: a checkpoint since `find_orphans` proves the stream alive.
    """
    if not message_ids:
        return []
    marked = session.scalars(
        update(MessageRow)
        .where(
            MessageRow.id.in_(list(message_ids)),
            MessageRow.status == Status.STREAMING,
            MessageRow.updated_at < cutoff,
        )
        .values(status=Status.INTERRUPTED, stream_id=None, updated_at=utcnow())
        .returning(MessageRow.id)
    )
    return list(marked)


def context(session: Session, conversation_id: str, question_id: str) -> list[tuple[str, str]]:
    """(role, content) from the system prompt to `question_id`: what the model is sent.

    Earlier answers go exactly as stored: a stopped, interrupted or failed one with its
    partial text (maybe empty), as the user saw it.
    """
    conversation = queries.conversation_row(session, conversation_id)
    tree = queries.load_tree(session, conversation_id)
    if question_id not in tree:
        raise MessageNotFound(question_id)
    if tree.nodes[question_id].role != Role.USER:
        raise WrongRole(question_id, Role.USER)
    path = [node.id for node in tree.path_to(question_id)]
    rows = session.execute(select(MessageRow.id, MessageRow.content).where(MessageRow.id.in_(path)))
    texts = {row.id: row.content for row in rows}
    turns = [(tree.nodes[message_id].role, texts[message_id]) for message_id in path]
    if conversation.system_prompt and conversation.system_prompt.strip():
        turns.insert(0, (Role.SYSTEM.value, conversation.system_prompt))
    return turns


def get(session: Session, conversation_id: str, message_id: str) -> Message:
    row = queries.message_row(session, conversation_id, message_id)
    return row.record(queries.alternatives(session, row))


def _in_conversation(session: Session, conversation_id: str, message_id: str) -> MessageRow | None:
    row = session.get(MessageRow, message_id)
    return row if row is not None and row.conversation_id == conversation_id else None


def _add(
    session: Session,
    conversation_id: str,
    parent_id: str | None,
    role: Role,
    content: str,
    *,
    model: str | None = None,
    stream_id: str | None = None,
) -> Message:
    """Insert a message, show it (it becomes the current leaf), and touch the conversation."""
    conversation = queries.conversation_row(session, conversation_id)
    now = utcnow()
    row = MessageRow(
        id=new_id(),
        conversation_id=conversation_id,
        parent_id=parent_id,
        role=role,
        content=content,
        status=Status.STREAMING if role == Role.ASSISTANT else Status.COMPLETE,
        model=model,
        stream_id=stream_id,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    if role == Role.USER and conversation.title is None and not conversation.title_is_custom:
        conversation.title = title_from(content)
    conversation.current_leaf_id = row.id
    conversation.updated_at = now
    session.flush()
    return row.record(queries.alternatives(session, row))
