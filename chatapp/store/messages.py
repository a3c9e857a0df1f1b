"""Units of work on messages: a question, an answer's start, checkpoints and end, the context.

An answer is written while it streams: `start_answer` creates it `streaming`,
`checkpoint_many` saves the text so far of every live answer of a process in one
unit (`checkpoint`, of one; the caller: at most once a second, never per token),
`finish` writes its final state. A worker killed mid-answer leaves it
`streaming`; orphans.py turns it `interrupted`, text kept.

These run for every answer, so each is a few prepared Core statements (queries.py
says why) and builds its record from what it wrote rather than reading it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from . import queries
from .errors import ConversationNotFound, InvalidParent, MessageNotFound, WrongRole
from .models import CONVERSATIONS, MESSAGES, new_id, utcnow
from .records import FINAL_STATUSES, Message, Role, Status, Usage
from .titles import title_from

C, M = CONVERSATIONS, MESSAGES

# A checkpoint or the end may also land on an answer marked interrupted by mistake (its
# stream was alive after all, only late): the live stream's write wins. Spelled as OR,
# not IN: an IN list is an "expanding" parameter, which executemany() refuses.
_WRITABLE = or_(M.c.status == Status.STREAMING.value, M.c.status == Status.INTERRUPTED.value)
_THIS_ONE = M.c.id == bindparam("message_id")

_PARENT = select(M.c.conversation_id, M.c.role).where(_THIS_ONE)
_INSERT = M.insert()
# A new message is shown (the current leaf); the first user message also names the conversation.
_SHOW_ANSWER = C.update().where(C.c.id == bindparam("conversation_id"))
_SHOW_QUESTION = _SHOW_ANSWER.values(title=func.coalesce(C.c.title, bindparam("automatic_title")))
_CHECKPOINT = M.update().where(_THIS_ONE, _WRITABLE).values(status=Status.STREAMING.value)
_CHECKPOINT_ONE = _CHECKPOINT.returning(M.c.id)
_STILL_WRITABLE = (
    select(M.c.id)
    .where(M.c.id.in_(bindparam("message_ids", expanding=True)), _WRITABLE)
    .order_by(M.c.id)
    .with_for_update()  # PostgreSQL: they stay writable until this unit ends; SQLite: already so
)
_FINISH = M.update().where(_THIS_ONE, _WRITABLE).values(stream_id=None)
_FINISH_READ = _FINISH.returning(*M.c)
_FINISH_QUIET = _FINISH.returning(M.c.conversation_id)
_EXISTS = select(M.c.id).where(_THIS_ONE)
_TOUCH = C.update().where(C.c.id == bindparam("conversation_id"))


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
    connection: Connection, conversation_id: str, content: str, parent_id: str | None, at_root: bool
) -> Message:
    """A user message after `parent_id`; when None, after the branch on display, or `at_root`: a
    new first message."""
    if at_root:
        if parent_id is not None:
            raise ValueError("a message at the root has no parent")
    elif parent_id is None:
        parent_id = queries.conversation_row(connection, conversation_id).current_leaf_id
    elif _in_conversation(connection, conversation_id, parent_id) is None:
        queries.conversation_row(connection, conversation_id)  # an unknown conversation says so first
        raise InvalidParent(parent_id, "it is not a message of this conversation")
    return add_message(connection, conversation_id, parent_id, Role.USER, content)


def edit_question(connection: Connection, conversation_id: str, message_id: str, content: str) -> Message:
    """A new version of a user message: a sibling with the same parent, shown from now on."""
    original = queries.message_row(connection, conversation_id, message_id)
    if original.role != Role.USER:
        raise WrongRole(message_id, Role.USER)
    return add_message(connection, conversation_id, original.parent_id, Role.USER, content)


def start_answer(
    connection: Connection, conversation_id: str, question_id: str, model: str | None, stream_id: str
) -> Message:
    """An assistant message, `streaming`, answering `question_id`; a second one is an alternative."""
    question = _in_conversation(connection, conversation_id, question_id)
    if question is None:
        raise InvalidParent(question_id, "it is not a message of this conversation")
    if question.role != Role.USER:
        raise InvalidParent(question_id, "an answer follows a user message")
    return add_message(
        connection, conversation_id, question_id, Role.ASSISTANT, "", model=model, stream_id=stream_id
    )


def regenerate(
    connection: Connection, conversation_id: str, answer_id: str, model: str | None, stream_id: str
) -> Message:
    """A new alternative to the assistant message `answer_id`: another answer to its question."""
    answer = queries.message_row(connection, conversation_id, answer_id)
    if answer.role != Role.ASSISTANT or answer.parent_id is None:
        raise WrongRole(answer_id, Role.ASSISTANT)
    return start_answer(connection, conversation_id, answer.parent_id, model, stream_id)


def checkpoint(connection: Connection, message_id: str, content: str, reasoning: str | None) -> bool:
    """Save a streaming answer's text so far; False when it has already ended (nothing written)."""
    written = connection.execute(
        _CHECKPOINT_ONE,
        {"message_id": message_id, "content": content, "reasoning": reasoning, "updated_at": utcnow()},
    ).first()
    return written is not None


def checkpoint_many(connection: Connection, answers: Sequence[tuple[str, str, str | None]]) -> list[str]:
    """Save the text so far of many streaming answers, (id, content, reasoning) each, in one
    executemany; the ids written, in the order given. An id missing there had ended (or was never
    an answer): nothing was written to it."""
    ids = list(dict.fromkeys(message_id for message_id, _, _ in answers))
    writable = set(connection.scalars(_STILL_WRITABLE, {"message_ids": ids}))
    if not writable:
        return []
    now = utcnow()
    connection.execute(
        _CHECKPOINT,
        [
            {"message_id": message_id, "content": content, "reasoning": reasoning, "updated_at": now}
            for message_id, content, reasoning in answers
            if message_id in writable
        ],
    )
    return [message_id for message_id in ids if message_id in writable]


def finish(
    connection: Connection, message_id: str, content: str, reasoning: str | None, outcome: Outcome
) -> Message:
    """Write an answer's final state. An answer that already ended is left as it was (and returned)."""
    row = _write_end(connection, _FINISH_READ, message_id, content, reasoning, outcome)
    if row is None:
        row = connection.execute(queries.MESSAGE, {"message_id": message_id}).first()
        if row is None:
            raise MessageNotFound(message_id)
    siblings = queries.alternatives(connection, row.conversation_id, row.parent_id, row.role)
    return queries.message_record(row, siblings)


def finish_quietly(
    connection: Connection, message_id: str, content: str, reasoning: str | None, outcome: Outcome
) -> bool:
    """`finish` without reading the answer back, for its own stream, which has no use for the
    record (every answer ends so: the read-back was a third of the unit). True when written;
    False when it had already ended (left as it was)."""
    if _write_end(connection, _FINISH_QUIET, message_id, content, reasoning, outcome) is not None:
        return True
    if connection.execute(_EXISTS, {"message_id": message_id}).first() is None:
        raise MessageNotFound(message_id)
    return False


def _write_end(
    connection: Connection,
    statement: Any,
    message_id: str,
    content: str,
    reasoning: str | None,
    outcome: Outcome,
) -> queries.AnyRow | None:
    """Write the end of an answer still writable, and touch its conversation; `statement`'s
    returned row, or None when the answer had already ended (or is gone)."""
    if outcome.status not in FINAL_STATUSES:
        raise ValueError(f"an answer ends as one of {sorted(FINAL_STATUSES)}, not {outcome.status!r}")
    now = utcnow()
    values: dict[str, Any] = {
        "message_id": message_id,
        "content": content,
        "reasoning": reasoning,
        "status": outcome.status.value,
        "finish_reason": outcome.finish_reason,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "ttft_ms": outcome.ttft_ms,
        "duration_ms": outcome.duration_ms,
        "updated_at": now,
    }
    if outcome.model:
        values["model"] = outcome.model
    if outcome.usage is not None:
        usage = outcome.usage
        values.update(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            usage_estimated=usage.estimated,
        )
    row = connection.execute(statement, values).first()
    if row is not None:
        connection.execute(_TOUCH, {"conversation_id": row.conversation_id, "updated_at": now})
    return row


def _path_to_message() -> Any:
    """(role, content) from the root down to a message of the conversation (none when it is not
    one), by its parent links: a recursive query that reads only that branch, however big the
    conversation's tree."""
    path = (
        # A literal 0, not a parameter: PostgreSQL would type it smallint, then refuse `depth + 1`.
        select(M.c.id, M.c.parent_id, M.c.role, M.c.content, literal_column("0", Integer).label("depth"))
        .where(M.c.id == bindparam("message_id"), M.c.conversation_id == bindparam("conversation_id"))
        .cte("path", recursive=True)
    )
    parent = M.alias("parent")
    path = path.union_all(
        select(parent.c.id, parent.c.parent_id, parent.c.role, parent.c.content, path.c.depth + 1).where(
            parent.c.id == path.c.parent_id
        )
    )
    return select(path.c.role, path.c.content).order_by(path.c.depth.desc())


PATH_TO_MESSAGE = _path_to_message()
_SYSTEM_PROMPT = select(C.c.system_prompt).where(C.c.id == bindparam("conversation_id"))


def context(connection: Connection, conversation_id: str, question_id: str) -> list[tuple[str, str]]:
    """(role, content) from the system prompt to `question_id`: what the model is sent.

    Earlier answers go exactly as stored: a stopped, interrupted or failed one with its
    partial text (maybe empty), as the user saw it.
    """
    prompt = connection.execute(_SYSTEM_PROMPT, {"conversation_id": conversation_id}).first()
    if prompt is None:
        raise ConversationNotFound(conversation_id)
    turns: list[tuple[str, str]] = [
        (row.role, row.content)
        for row in connection.execute(
            PATH_TO_MESSAGE, {"conversation_id": conversation_id, "message_id": question_id}
        )
    ]
    if not turns:
        raise MessageNotFound(question_id)
    if turns[-1][0] != Role.USER:
        raise WrongRole(question_id, Role.USER)
    system_prompt = prompt.system_prompt
    if system_prompt and system_prompt.strip():
        turns.insert(0, (Role.SYSTEM.value, system_prompt))
    return turns


def get(connection: Connection, conversation_id: str, message_id: str) -> Message:
    row = queries.message_row(connection, conversation_id, message_id)
    siblings = queries.alternatives(connection, conversation_id, row.parent_id, row.role)
    return queries.message_record(row, siblings)


def _in_conversation(connection: Connection, conversation_id: str, message_id: str) -> queries.AnyRow | None:
    """The message's conversation and role, when it is a message of this conversation."""
    row = connection.execute(_PARENT, {"message_id": message_id}).first()
    return row if row is not None and row.conversation_id == conversation_id else None


def add_message(
    connection: Connection,
    conversation_id: str,
    parent_id: str | None,
    role: Role,
    content: str,
    *,
    model: str | None = None,
    stream_id: str | None = None,
) -> Message:
    """Insert a message, show it (it becomes the current leaf), and touch the conversation."""
    message = new_message(
        conversation_id, parent_id, role, content, utcnow(), model=model, stream_id=stream_id
    )
    show_new(
        connection, conversation_id, message.id, message.created_at, content if role == Role.USER else None
    )
    insert(connection, [message])
    return replace(
        message, alternatives=queries.alternatives(connection, conversation_id, parent_id, role.value)
    )


def new_message(
    conversation_id: str,
    parent_id: str | None,
    role: Role,
    content: str,
    now: datetime,
    *,
    model: str | None = None,
    stream_id: str | None = None,
) -> Message:
    """The record of a message not yet written (`insert`): a question `complete`, an answer
    `streaming`; its own only alternative (a caller that may add a sibling reads them)."""
    message_id = new_id()
    return Message(
        id=message_id,
        conversation_id=conversation_id,
        parent_id=parent_id,
        role=role,
        content=content,
        reasoning=None,
        status=Status.STREAMING if role == Role.ASSISTANT else Status.COMPLETE,
        finish_reason=None,
        error_code=None,
        error_message=None,
        model=model,
        usage=None,
        ttft_ms=None,
        duration_ms=None,
        stream_id=stream_id,
        created_at=now,
        updated_at=now,
        alternatives=(message_id,),
    )


def show_new(
    connection: Connection, conversation_id: str, leaf_id: str, now: datetime, question: str | None
) -> None:
    """Show a new message (the current leaf) and touch the conversation; a `question` (a user
    message's text) also names an untitled conversation. `ConversationNotFound` when it is gone."""
    shown = {"conversation_id": conversation_id, "current_leaf_id": leaf_id, "updated_at": now}
    if question is not None:
        # Only an untitled conversation gets one: a renamed one always has a title.
        shown_as = connection.execute(_SHOW_QUESTION, {**shown, "automatic_title": title_from(question)})
    else:
        shown_as = connection.execute(_SHOW_ANSWER, shown)
    if shown_as.rowcount == 0:
        raise ConversationNotFound(conversation_id)


def insert(connection: Connection, new: Sequence[Message]) -> None:
    """Write new messages (`new_message`), in one statement."""
    rows = [
        {
            "id": m.id,
            "conversation_id": m.conversation_id,
            "parent_id": m.parent_id,
            "role": m.role.value,
            "content": m.content,
            "status": m.status.value,
            "model": m.model,
            "stream_id": m.stream_id,
            "created_at": m.created_at,
            "updated_at": m.updated_at,
        }
        for m in new
    ]
    connection.execute(_INSERT, rows if len(rows) > 1 else rows[0])
