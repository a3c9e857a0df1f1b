"""Units that begin an answer, each with the model's context: a question and its answer's start
(`ask`), or another answer to a question (`ask_again`).

Every stored answer begins here, so each is one unit of work: sending a message used to take four
(read the conversation, add the question, read the context, start the answer), and a unit's
transaction (BEGIN, COMMIT, SQLAlchemy's bookkeeping around them) costs about as much CPU as its
statements. The checks come first, in the order the API reports them (an unknown conversation,
then a wrong parent, then the length); one that fails raises before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Connection

from . import messages, queries
from .conversations import Unset
from .errors import ConversationTooLong, InvalidParent, MessageNotFound, WrongRole
from .models import utcnow
from .records import Conversation, Message, Role

# Why a parent cannot take a new question (InvalidParent.reason).
NOT_IN_CONVERSATION = "it is not a message of this conversation"
NOT_AN_ANSWER = "a question follows an answer"

_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Turn:
    """An answer just started, and what its stream needs."""

    conversation: Conversation  # as it was before this unit
    question_id: str
    answer: Message  # `streaming`, shown
    model: str  # the one asked of: the answer's
    context: list[tuple[str, str]]  # (role, content): the model's input, as `messages.context`


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
    question = messages.new_message(conversation_id, parent, Role.USER, content, asked_at)
    model = model or row.model or default_model
    answer = messages.new_message(
        conversation_id, question.id, Role.ASSISTANT, "", answered_at, model=model, stream_id=stream_id
    )
    # One update shows the answer and, on a first message, names the conversation after the question.
    messages.show_new(connection, conversation_id, answer.id, answered_at, content)
    messages.insert(connection, [question, answer])
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
    answer = messages.add_message(
        connection, conversation_id, question_id, Role.ASSISTANT, "", model=model, stream_id=stream_id
    )
    return Turn(
        conversation=queries.conversation_record(row),
        question_id=question_id,
        answer=answer,
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
        messages.PATH_TO_MESSAGE, {"conversation_id": conversation_id, "message_id": message_id}
    )
    return [(row.role, row.content) for row in found]


def _with_system_prompt(system_prompt: str | None, branch: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if system_prompt and system_prompt.strip():
        return [(Role.SYSTEM.value, system_prompt), *branch]
    return branch
