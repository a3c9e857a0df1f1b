"""Units that begin an answer, each with the model's context: a question and its answer's start
(`ask`), or another answer to a question (`ask_again`); the only writers of new messages.

Every stored answer begins here, so each is one unit of work: sending a message used to take four
(read the conversation, add the question, read the context, start the answer), and a unit's
transaction (BEGIN, COMMIT, SQLAlchemy's bookkeeping around them) costs about as much CPU as its
statements. The checks come first, in the order the API reports them (an unknown conversation,
then a wrong parent, then the length); one that fails raises before anything is written. A new
message's record is built from what is written (no read-back), and the newest one is shown: it
becomes the conversation's current leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, func, literal_column, select
from sqlalchemy.engine import Connection

from . import queries
from .conversations import Unset
from .errors import ConversationNotFound, ConversationTooLong, InvalidParent, MessageNotFound, WrongRole
from .models import CONVERSATIONS, MESSAGES, new_id, utcnow
from .records import Conversation, Message, Role, Status
from .titles import title_from

C, M = CONVERSATIONS, MESSAGES

# Why a parent cannot take a new question (InvalidParent.reason): the one spelling of each.
NOT_IN_CONVERSATION = "it is not a message of this conversation"
NOT_AN_ANSWER = "a question follows an answer"

_ONE_MICROSECOND = timedelta(microseconds=1)

_INSERT = M.insert()
# A new message is shown (the current leaf); a question also names an untitled conversation.
_SHOW_ANSWER = C.update().where(C.c.id == bindparam("conversation_id"))
_SHOW_QUESTION = _SHOW_ANSWER.values(title=func.coalesce(C.c.title, bindparam("automatic_title")))


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


_PATH_TO_MESSAGE = _path_to_message()


@dataclass(frozen=True, slots=True)
class Turn:
    """An answer just started, and what its stream needs."""

    conversation: Conversation  # as it was before this unit
    question_id: str
    answer: Message  # `streaming`, shown
    model: str  # the one asked of: the answer's
    # (role, content): the model's input, from the system prompt through the branch to the
    # question; earlier answers as stored (a stopped one with its partial text).
    context: list[tuple[str, str]]


def ask(
    connection: Connection,
    conversation_id: str,
    content: str,
    parent_id: str | Unset | None,
    model: str | None,
    default_model: str,
    max_chars: int | None,
    stream_id: str,
) -> Turn:
    """A user message after `parent_id` (an answer of this conversation; `Unset`: the branch on
    display; None: a new first message) and its answer's start, in the model asked, else the
    conversation's, else `default_model`. `ConversationTooLong` when the system prompt, the
    branch and the question pass `max_chars`."""
    row = queries.conversation_row(connection, conversation_id)
    parent = row.current_leaf_id if isinstance(parent_id, Unset) else parent_id
    branch = [] if parent is None else _branch_to_answer(connection, conversation_id, parent)
    system_prompt = row.system_prompt
    total = len(content) + len(system_prompt or "") + sum(len(text) for _, text in branch)
    if max_chars is not None and total > max_chars:
        raise ConversationTooLong(total, max_chars)

    asked_at = utcnow()
    # Strictly later: the tree takes the newest message as the leaf to show (tree.py).
    answered_at = max(utcnow(), asked_at + _ONE_MICROSECOND)
    question = _new_message(conversation_id, parent, Role.USER, content, asked_at)
    model = model or row.model or default_model
    answer = _new_message(
        conversation_id, question.id, Role.ASSISTANT, "", answered_at, model=model, stream_id=stream_id
    )
    # One update shows the answer and, on a first message, names the conversation after the question.
    _show(connection, conversation_id, answer.id, answered_at, question=content)
    _insert(connection, [question, answer])
    return Turn(
        conversation=queries.conversation_record(row),
        question_id=question.id,
        answer=answer,  # the first answer to a new question: its own only alternative
        model=model,
        context=_with_system_prompt(system_prompt, [*branch, (Role.USER.value, content)]),
    )


def ask_again(
    connection: Connection,
    conversation_id: str,
    answer_id: str,
    model: str | None,
    default_model: str,
    stream_id: str,
) -> Turn:
    """A new answer beside the assistant message `answer_id` (`WrongRole` for a user message), in
    the model asked, else the conversation's, else `default_model`."""
    row = queries.conversation_row(connection, conversation_id)
    earlier = queries.message_row(connection, conversation_id, answer_id)
    if earlier.role != Role.ASSISTANT or earlier.parent_id is None:
        raise WrongRole(answer_id, Role.ASSISTANT)
    question_id: str = earlier.parent_id
    branch = _path(connection, conversation_id, question_id)
    if not branch:
        raise MessageNotFound(question_id)
    if branch[-1][0] != Role.USER:
        raise WrongRole(question_id, Role.USER)
    model = model or row.model or default_model
    now = utcnow()
    answer = _new_message(
        conversation_id, question_id, Role.ASSISTANT, "", now, model=model, stream_id=stream_id
    )
    _show(connection, conversation_id, answer.id, now, question=None)
    _insert(connection, [answer])
    alternatives = queries.alternatives(connection, conversation_id, question_id, Role.ASSISTANT.value)
    return Turn(
        conversation=queries.conversation_record(row),
        question_id=question_id,
        answer=replace(answer, alternatives=alternatives),
        model=model,
        context=_with_system_prompt(row.system_prompt, branch),
    )


def _branch_to_answer(connection: Connection, conversation_id: str, parent_id: str) -> list[tuple[str, str]]:
    """(role, content) from the root to `parent_id`, which must be an answer of this conversation."""
    branch = _path(connection, conversation_id, parent_id)
    if not branch:
        raise InvalidParent(parent_id, NOT_IN_CONVERSATION)
    if branch[-1][0] != Role.ASSISTANT:
        raise InvalidParent(parent_id, NOT_AN_ANSWER)
    return branch


def _path(connection: Connection, conversation_id: str, message_id: str) -> list[tuple[str, str]]:
    found = connection.execute(
        _PATH_TO_MESSAGE, {"conversation_id": conversation_id, "message_id": message_id}
    )
    return [(row.role, row.content) for row in found]


def _with_system_prompt(system_prompt: str | None, branch: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if system_prompt and system_prompt.strip():
        return [(Role.SYSTEM.value, system_prompt), *branch]
    return branch


def _new_message(
    conversation_id: str,
    parent_id: str | None,
    role: Role,
    content: str,
    now: datetime,
    *,
    model: str | None = None,
    stream_id: str | None = None,
) -> Message:
    """The record of a message not yet written (`_insert`): a question `complete`, an answer
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


def _show(
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


def _insert(connection: Connection, new: Sequence[Message]) -> None:
    """Write new messages (`_new_message`), in one statement."""
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
