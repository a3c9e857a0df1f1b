"""Sending a message and regenerating (chatapp/store/turns.py): `Store.ask` writes a question and
its answer's start, `Store.ask_again` another answer to a question; each returns the model's
context, and each refuses, before writing anything, what the tree does not allow."""

from __future__ import annotations

import pytest

from chatapp.store import (
    NOT_AN_ANSWER,
    NOT_IN_CONVERSATION,
    ConversationNotFound,
    ConversationTooLong,
    InvalidParent,
    MessageNotFound,
    Outcome,
    Role,
    Status,
    Store,
    WrongRole,
)
from chatapp.store.models import MESSAGES, utcnow

from .steps import DEFAULT_MODEL, answer_again, answered, ask, message_count

# Asking


def test_ask_adds_the_question_after_the_branch_on_display_and_starts_its_answer(store: Store) -> None:
    conversation = store.create_conversation()
    one = answered(store, conversation.id, "one", "uno")

    turn = ask(store, conversation.id, "two", stream_id="live")

    shown = store.read_conversation(conversation.id).messages
    assert [m.id for m in shown] == [one.question_id, one.answer.id, turn.question_id, turn.answer.id]
    assert (shown[2].role, shown[2].content, shown[2].parent_id) == (Role.USER, "two", one.answer.id)
    assert (turn.answer.role, turn.answer.parent_id, turn.answer.status, turn.answer.stream_id) == (
        Role.ASSISTANT,
        turn.question_id,
        Status.STREAMING,
        "live",
    )
    assert store.get_conversation(conversation.id).current_leaf_id == turn.answer.id


def test_ask_returns_the_models_context_with_the_system_prompt_and_a_stopped_answers_partial_text(
    store: Store,
) -> None:
    conversation = store.create_conversation(system_prompt="You are terse.")
    counting = ask(store, conversation.id, "count to ten")
    store.finish_answer(counting.answer.id, "1, 2, 3, ", None, Outcome(Status.STOPPED))

    turn = ask(store, conversation.id, "why did you stop?")

    assert counting.context == [("system", "You are terse."), ("user", "count to ten")]
    assert turn.context == [
        ("system", "You are terse."),
        ("user", "count to ten"),
        ("assistant", "1, 2, 3, "),
        ("user", "why did you stop?"),
    ]


def test_a_blank_system_prompt_is_left_out_of_the_context(store: Store) -> None:
    conversation = store.create_conversation(system_prompt="  \n ")

    assert ask(store, conversation.id, "hi").context == [("user", "hi")]


def test_the_context_follows_the_branch_of_the_message_answered_not_the_one_on_display(
    store: Store,
) -> None:
    conversation = store.create_conversation()
    hello = answered(store, conversation.id, "hello", "hi")
    old = answered(store, conversation.id, "old question", "old answer")

    new = ask(store, conversation.id, "new question", parent_id=hello.answer.id)
    again = answer_again(store, conversation.id, old.answer.id)

    assert new.context == [("user", "hello"), ("assistant", "hi"), ("user", "new question")]
    assert again.context == [("user", "hello"), ("assistant", "hi"), ("user", "old question")]


def test_ask_returns_the_conversation_as_it_was_and_records_that_a_read_returns(store: Store) -> None:
    """Writes build their records from what they wrote instead of reading it back: the same fields."""
    conversation = store.create_conversation(model="m", temperature=0.25)

    turn = ask(store, conversation.id, "  a  question  ")

    assert turn.conversation == conversation
    assert turn.answer == store.get_message(conversation.id, turn.answer.id)
    again = answer_again(store, conversation.id, turn.answer.id)
    assert again.answer == store.get_message(conversation.id, again.answer.id)
    question = store.get_message(conversation.id, turn.question_id)
    assert (question.content, question.status, question.alternatives) == (
        "  a  question  ",
        Status.COMPLETE,
        (turn.question_id,),
    )
    assert turn.answer.created_at > question.created_at


def test_the_answer_is_in_the_model_asked_else_the_conversations_else_the_default(store: Store) -> None:
    plain = store.create_conversation()
    chosen = store.create_conversation(model="chosen")

    asked = ask(store, chosen.id, "q", model="asked")
    assert (asked.model, asked.answer.model) == ("asked", "asked")
    assert ask(store, chosen.id, "q").answer.model == "chosen"
    assert ask(store, plain.id, "q").model == DEFAULT_MODEL

    again = store.ask_again(chosen.id, asked.answer.id, model="other", default_model="d", stream_id="s")
    assert (again.model, again.answer.model) == ("other", "other")
    assert answer_again(store, chosen.id, asked.answer.id).answer.model == "chosen"


# Where a question goes


def test_a_question_after_an_earlier_answer_starts_a_branch_beside_the_one_that_followed_it(
    store: Store,
) -> None:
    """Editing a question and sending it again: a new question after the same answer."""
    conversation = store.create_conversation()
    hello = answered(store, conversation.id, "hello", "hi")
    old = answered(store, conversation.id, "whats 2+2", "4")

    edited = ask(store, conversation.id, "what's 2+3?", parent_id=hello.answer.id)

    question = store.get_message(conversation.id, edited.question_id)
    assert (question.parent_id, question.alternatives) == (hello.answer.id, (old.question_id, question.id))
    q1, a1 = hello.question_id, hello.answer.id
    shown = store.read_conversation(conversation.id).messages
    assert [m.id for m in shown] == [q1, a1, question.id, edited.answer.id]
    kept = store.read_conversation(conversation.id, leaf_id=old.answer.id).messages
    assert [m.id for m in kept] == [q1, a1, old.question_id, old.answer.id]


def test_a_question_with_no_parent_is_a_new_first_message_beside_the_others(store: Store) -> None:
    """Editing the first question, or starting over: a second root."""
    conversation = store.create_conversation()
    first = answered(store, conversation.id, "helo", "hi")

    again = ask(store, conversation.id, "hello", parent_id=None)

    question = store.get_message(conversation.id, again.question_id)
    assert (question.parent_id, question.alternatives) == (None, (first.question_id, question.id))
    shown = store.read_conversation(conversation.id).messages
    assert [m.id for m in shown] == [question.id, again.answer.id]
    assert again.context == [("user", "hello")]


def test_ask_refuses_a_parent_that_is_not_a_message_of_this_conversation_and_writes_nothing(
    store: Store,
) -> None:
    mine = store.create_conversation()
    theirs = store.create_conversation()
    foreign = answered(store, theirs.id, "theirs", "ok")
    before = message_count(store)

    for parent_id in (foreign.answer.id, foreign.question_id, "no-such-message"):
        with pytest.raises(InvalidParent) as refused:
            ask(store, mine.id, "hi", parent_id=parent_id)
        assert (refused.value.message_id, refused.value.reason) == (parent_id, NOT_IN_CONVERSATION)

    assert message_count(store) == before
    unchanged = store.get_conversation(mine.id)
    assert (unchanged.title, unchanged.current_leaf_id, unchanged.updated_at) == (None, None, mine.updated_at)


def test_ask_refuses_a_question_as_the_parent_of_a_question_and_writes_nothing(store: Store) -> None:
    """Only an answer takes a new question: a question after a question would leave one unanswered."""
    conversation = store.create_conversation()
    turn = ask(store, conversation.id, "mine")
    before = message_count(store)

    with pytest.raises(InvalidParent) as refused:
        ask(store, conversation.id, "hi", parent_id=turn.question_id)

    assert (refused.value.message_id, refused.value.reason) == (turn.question_id, NOT_AN_ANSWER)
    assert message_count(store) == before
    assert store.get_conversation(conversation.id).current_leaf_id == turn.answer.id


def test_ask_refuses_a_conversation_that_would_pass_max_chars_and_writes_nothing(store: Store) -> None:
    """The system prompt, the branch and the question count: 6 + 5 + 2 + 3 characters here."""
    conversation = store.create_conversation(system_prompt="terse.")
    answered(store, conversation.id, "hello", "hi")
    before = message_count(store)

    with pytest.raises(ConversationTooLong) as refused:
        ask(store, conversation.id, "why", max_chars=15)

    assert (refused.value.total, refused.value.limit) == (16, 15)
    assert message_count(store) == before
    assert ask(store, conversation.id, "why", max_chars=16).context[-1] == ("user", "why")


def test_ask_reports_an_unknown_conversation_before_a_wrong_parent_and_that_before_the_length(
    store: Store,
) -> None:
    conversation = store.create_conversation()

    with pytest.raises(ConversationNotFound):
        ask(store, "no-such-conversation", "hi", parent_id="no-such-message", max_chars=1)
    with pytest.raises(InvalidParent):
        ask(store, conversation.id, "hi", parent_id="no-such-message", max_chars=1)


# Asking again


def test_ask_again_starts_another_answer_beside_the_first_with_the_context_to_its_question(
    store: Store,
) -> None:
    conversation = store.create_conversation(system_prompt="Be brief.")
    first = answered(store, conversation.id, "pick a number", "4")

    turn = answer_again(store, conversation.id, first.answer.id, stream_id="s2")

    question_id = first.question_id
    assert turn.question_id == question_id
    assert turn.context == [("system", "Be brief."), ("user", "pick a number")]
    assert (turn.answer.parent_id, turn.answer.status, turn.answer.stream_id, turn.answer.model) == (
        question_id,
        Status.STREAMING,
        "s2",
        DEFAULT_MODEL,
    )
    assert turn.answer.alternatives == (first.answer.id, turn.answer.id)
    shown = store.read_conversation(conversation.id).messages
    assert [m.id for m in shown] == [question_id, turn.answer.id]
    assert shown[-1].alternatives == (first.answer.id, turn.answer.id)


def test_ask_again_refuses_a_question_and_an_unknown_message(store: Store) -> None:
    conversation = store.create_conversation()
    answered(store, conversation.id, "hi", "hello")
    turn = answered(store, conversation.id, "and?", "that's all")
    before = message_count(store)

    with pytest.raises(WrongRole) as refused:
        answer_again(store, conversation.id, turn.question_id)
    with pytest.raises(MessageNotFound):
        answer_again(store, conversation.id, "nope")

    assert (refused.value.message_id, refused.value.expected) == (turn.question_id, Role.ASSISTANT)
    assert message_count(store) == before


def test_ask_again_refuses_an_answer_whose_parent_is_not_a_question(store: Store) -> None:
    """An answer follows a question. The store never writes an answer to an answer; one found in
    the database (written by hand, or by a bug) is not answered again."""
    conversation = store.create_conversation()
    turn = answered(store, conversation.id, "hi", "hello")
    stray = "f" * 32
    now = utcnow()
    row: dict[str, object] = {"id": stray, "conversation_id": conversation.id, "parent_id": turn.answer.id}
    row |= {"role": Role.ASSISTANT.value, "content": "?", "status": Status.COMPLETE.value}
    row |= {"created_at": now, "updated_at": now}
    store.run(lambda c: c.execute(MESSAGES.insert(), row), write=True)

    with pytest.raises(WrongRole) as refused:
        answer_again(store, conversation.id, stray)

    assert (refused.value.message_id, refused.value.expected) == (turn.answer.id, Role.USER)
