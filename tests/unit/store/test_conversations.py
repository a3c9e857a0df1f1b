"""Conversations (chatapp/store/conversations.py): create, read, list, change, delete; the
automatic title; the branch on display and its alternatives; one message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from chatapp.store import ConversationNotFound, MessageNotFound, Role, Status, Store
from chatapp.store.models import ConversationRow

from .steps import answer_again, answered, ask, message_count


def test_a_created_conversation_reads_back_with_its_settings(store: Store) -> None:
    created = store.create_conversation(
        model="gpt-x", system_prompt="Be brief.", temperature=0.5, max_tokens=99
    )

    read = store.get_conversation(created.id)

    assert read == created
    assert (read.model, read.system_prompt, read.temperature, read.max_tokens) == (
        "gpt-x",
        "Be brief.",
        0.5,
        99,
    )
    assert read.title is None
    assert not read.title_is_custom
    assert len(read.id) == 32
    assert read.id.isalnum()


def test_times_are_aware_utc_and_keep_their_microseconds(store: Store) -> None:
    moment = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    created = store.create_conversation()
    store.run(lambda s: s.execute(update(ConversationRow).values(updated_at=moment)), write=True)

    read = store.get_conversation(created.id)

    assert read.created_at.tzinfo is UTC
    assert read.updated_at == moment
    assert read.updated_at.tzinfo is UTC
    assert read.updated_at.microsecond == 678901


def test_unknown_conversation_ids_raise_conversation_not_found(store: Store) -> None:
    for call in (
        lambda: store.get_conversation("nope"),
        lambda: store.read_conversation("nope"),
        lambda: store.update_conversation("nope", title="x"),
        lambda: store.delete_conversation("nope"),
        lambda: store.set_current_leaf("nope", "nope"),
        lambda: ask(store, "nope", "hi"),
        lambda: answer_again(store, "nope", "nope"),
    ):
        with pytest.raises(ConversationNotFound):
            call()


def test_conversations_are_listed_newest_first_and_paged_with_the_before_cursor(store: Store) -> None:
    ids = [store.create_conversation().id for _ in range(5)]
    ask(store, ids[0], "the oldest, written to last")

    first = store.list_conversations(limit=2)
    second = store.list_conversations(before=first[-1].updated_at, limit=2)
    third = store.list_conversations(before=second[-1].updated_at, limit=2)

    assert [c.id for c in first + second + third] == [ids[0], ids[4], ids[3], ids[2], ids[1]]
    assert len(third) == 1


def test_the_before_id_cursor_pages_through_conversations_updated_in_the_same_microsecond(
    store: Store,
) -> None:
    ids = sorted(store.create_conversation().id for _ in range(3))
    same = datetime(2030, 1, 1, tzinfo=UTC)
    store.run(lambda s: s.execute(update(ConversationRow).values(updated_at=same)), write=True)

    first = store.list_conversations(limit=1)
    rest = store.list_conversations(before=first[0].updated_at, before_id=first[0].id, limit=5)

    assert [c.id for c in first + rest] == list(reversed(ids))


def test_the_list_holds_only_the_conversations_of_the_owner_asked_for(store: Store) -> None:
    anonymous = store.create_conversation()
    alice = store.create_conversation(owner_id="alice")

    assert [c.id for c in store.list_conversations()] == [anonymous.id]
    assert [c.id for c in store.list_conversations(owner_id="alice")] == [alice.id]


def test_the_first_question_names_the_conversation_on_one_shortened_line_and_later_ones_do_not(
    store: Store,
) -> None:
    conversation = store.create_conversation()
    long_question = "How do I\nmake bread at home without a machine, and how long should the dough rest?"

    answered(store, conversation.id, long_question, "Knead it.")
    ask(store, conversation.id, "And sourdough?")

    title = store.get_conversation(conversation.id).title
    assert title == "How do I make bread at home without a machine, and how long…"
    assert title is not None
    assert len(title) <= 60


def test_a_renamed_conversation_keeps_its_title_and_clearing_it_returns_to_the_first_message(
    store: Store,
) -> None:
    conversation = store.create_conversation()
    ask(store, conversation.id, "What is a monad?")

    renamed = store.update_conversation(conversation.id, title="  Monads  ")
    ask(store, conversation.id, "Something else entirely", parent_id=None)
    kept = store.get_conversation(conversation.id)
    cleared = store.update_conversation(conversation.id, title=None)

    assert (renamed.title, renamed.title_is_custom) == ("Monads", True)
    assert kept.title == "Monads"
    assert (cleared.title, cleared.title_is_custom) == ("What is a monad?", False)


def test_a_title_given_at_creation_is_not_replaced_by_the_first_message(store: Store) -> None:
    conversation = store.create_conversation(title="Bread")
    ask(store, conversation.id, "How do I make bread?")

    assert store.get_conversation(conversation.id).title == "Bread"


def test_an_update_changes_only_the_fields_given_and_none_clears_a_setting(store: Store) -> None:
    conversation = store.create_conversation(model="a", system_prompt="p", temperature=1.0, max_tokens=10)

    updated = store.update_conversation(conversation.id, model="b", temperature=None)

    assert (updated.model, updated.system_prompt, updated.temperature, updated.max_tokens) == (
        "b",
        "p",
        None,
        10,
    )
    assert updated.updated_at > conversation.updated_at


def test_the_records_changes_return_are_what_a_read_returns(store: Store) -> None:
    """Writes build their records from what they wrote instead of reading it back: the same fields."""
    conversation = store.create_conversation(title="t", model="m", temperature=0.25)
    turn = ask(store, conversation.id, "  a  question  ")

    renamed = store.update_conversation(conversation.id, title="renamed", max_tokens=7)

    assert renamed == store.get_conversation(conversation.id)
    assert renamed.current_leaf_id == turn.answer.id


def test_deleting_a_conversation_deletes_its_messages(store: Store) -> None:
    kept = store.create_conversation()
    ask(store, kept.id, "stay")
    doomed = store.create_conversation()
    answered(store, doomed.id, "hello", "hi")

    store.delete_conversation(doomed.id)

    with pytest.raises(ConversationNotFound):
        store.get_conversation(doomed.id)
    assert message_count(store) == 2


# The branch on display


def test_a_read_returns_the_conversation_and_the_branch_on_display_together(store: Store) -> None:
    conversation = store.create_conversation()
    turn = answered(store, conversation.id, "hi", "hello")

    view = store.read_conversation(conversation.id)

    assert view.conversation.current_leaf_id == turn.answer.id
    assert [m.content for m in view.messages] == ["hi", "hello"]


def test_a_branch_runs_from_the_first_message_to_the_newest_with_one_alternative_each(store: Store) -> None:
    conversation = store.create_conversation()
    one = answered(store, conversation.id, "one", "uno")
    two = ask(store, conversation.id, "two")

    branch = store.read_conversation(conversation.id).messages

    q1, a1, q2, a2 = one.question_id, one.answer.id, two.question_id, two.answer.id
    assert [(m.id, m.role, m.parent_id, m.status) for m in branch] == [
        (q1, Role.USER, None, Status.COMPLETE),
        (a1, Role.ASSISTANT, q1, Status.COMPLETE),
        (q2, Role.USER, a1, Status.COMPLETE),
        (a2, Role.ASSISTANT, q2, Status.STREAMING),
    ]
    assert [m.alternatives for m in branch] == [(q1,), (a1,), (q2,), (a2,)]


def test_choosing_an_alternative_shows_the_newest_leaf_under_it(store: Store) -> None:
    conversation = store.create_conversation()
    one = answered(store, conversation.id, "hello", "hi")
    two = answered(store, conversation.id, "and then?", "then this")
    other = answer_again(store, conversation.id, one.answer.id)

    back = store.set_current_leaf(conversation.id, one.answer.id)

    q1, a1 = one.question_id, one.answer.id
    assert [m.id for m in back] == [q1, a1, two.question_id, two.answer.id]
    assert back[1].alternatives == (a1, other.answer.id)
    assert store.get_conversation(conversation.id).current_leaf_id == two.answer.id
    assert store.read_conversation(conversation.id).messages == back
    shown = store.read_conversation(conversation.id, leaf_id=other.answer.id).messages
    assert [m.id for m in shown] == [q1, other.answer.id]


def test_a_message_of_another_conversation_is_not_found_in_this_one(store: Store) -> None:
    mine = store.create_conversation()
    theirs = store.create_conversation()
    foreign = ask(store, theirs.id, "not yours")

    for message_id in (foreign.question_id, foreign.answer.id, "no-such-message"):
        with pytest.raises(MessageNotFound):
            store.get_message(mine.id, message_id)
        with pytest.raises(MessageNotFound):
            store.set_current_leaf(mine.id, message_id)
        with pytest.raises(MessageNotFound):
            store.read_conversation(mine.id, leaf_id=message_id)
        with pytest.raises(MessageNotFound):
            answer_again(store, mine.id, message_id)
