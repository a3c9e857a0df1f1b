"""The conversation store (chatapp/store/), each test run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import gc
import logging
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from chatapp.store import (
    ConversationNotFound,
    ConversationTooLong,
    InvalidParent,
    MessageNotFound,
    Role,
    Status,
    Store,
    Turn,
    Usage,
    WrongRole,
    database_url,
    upgrade_to_head,
)
from chatapp.store.messages import Outcome
from chatapp.store.models import ConversationRow, MessageRow
from chatapp.store.titles import title_from
from chatapp.store.turns import NOT_AN_ANSWER, NOT_IN_CONVERSATION
from harness.postgres import PostgresServer


@pytest.fixture(scope="module")
def postgres_url(postgres: PostgresServer) -> str:
    """A PostgreSQL database for this module, migrated once; each test empties it."""
    url = postgres.create_database("store_tests")
    upgrade_to_head(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    if request.param == "sqlite":
        url = str(database_url(None, tmp_path_factory.mktemp("instance")))
        upgrade_to_head(url)
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store.open(url)
    store.run(lambda s: s.execute(delete(ConversationRow)), write=True)
    yield store
    store.close()


def answer(store: Store, conversation_id: str, question_id: str, text: str, stream: str = "s1") -> str:
    """A complete answer to `question_id`; its id."""
    started = store.start_assistant_message(conversation_id, question_id, model="m", stream_id=stream)
    store.finish_message(started.id, status=Status.COMPLETE, content=text, finish_reason="stop")
    return started.id


def message_count(store: Store) -> int:
    return store.run(lambda s: s.scalar(select(func.count()).select_from(MessageRow)) or 0)


# Conversations


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
        lambda: store.update_conversation("nope", title="x"),
        lambda: store.delete_conversation("nope"),
        lambda: store.branch("nope"),
        lambda: store.add_user_message("nope", "hi"),
        lambda: store.context_for("nope", "nope"),
    ):
        with pytest.raises(ConversationNotFound):
            call()


def test_conversations_are_listed_newest_first_and_paged_with_the_before_cursor(store: Store) -> None:
    ids = [store.create_conversation().id for _ in range(5)]
    store.add_user_message(ids[0], "the oldest, written to last")

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


def test_the_first_user_message_names_the_conversation_on_one_shortened_line(store: Store) -> None:
    conversation = store.create_conversation()
    long_question = "How do I\nmake bread at home without a machine, and how long should the dough rest?"

    first = store.add_user_message(conversation.id, long_question)
    answer(store, conversation.id, first.id, "Knead it.")
    store.add_user_message(conversation.id, "And sourdough?")

    title = store.get_conversation(conversation.id).title
    assert title == "How do I make bread at home without a machine, and how long…"
    assert title is not None
    assert len(title) <= 60


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("hi", "hi"),
        ("  several\n\tlines  here ", "several lines here"),
        ("word " * 20, "word word word word word word word word word word word word…"),
        ("x" * 80, "x" * 59 + "…"),
        ("   ", None),
    ],
)
def test_title_from_keeps_one_line_and_cuts_on_a_word_boundary(text: str, title: str | None) -> None:
    assert title_from(text) == title


def test_a_renamed_conversation_keeps_its_title_and_clearing_it_returns_to_the_first_message(
    store: Store,
) -> None:
    conversation = store.create_conversation()
    store.add_user_message(conversation.id, "What is a monad?")

    renamed = store.update_conversation(conversation.id, title="  Monads  ")
    store.add_user_message(conversation.id, "Something else entirely")
    kept = store.get_conversation(conversation.id)
    cleared = store.update_conversation(conversation.id, title=None)

    assert (renamed.title, renamed.title_is_custom) == ("Monads", True)
    assert kept.title == "Monads"
    assert (cleared.title, cleared.title_is_custom) == ("What is a monad?", False)


def test_a_title_given_at_creation_is_not_replaced_by_the_first_message(store: Store) -> None:
    conversation = store.create_conversation(title="Bread")
    store.add_user_message(conversation.id, "How do I make bread?")

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


def test_deleting_a_conversation_deletes_its_messages(store: Store) -> None:
    kept = store.create_conversation()
    store.add_user_message(kept.id, "stay")
    doomed = store.create_conversation()
    question = store.add_user_message(doomed.id, "hello")
    answer(store, doomed.id, question.id, "hi")

    store.delete_conversation(doomed.id)

    with pytest.raises(ConversationNotFound):
        store.get_conversation(doomed.id)
    assert message_count(store) == 1


# The tree: branches and alternatives


def test_a_branch_runs_from_the_first_message_to_the_newest_with_one_alternative_each(store: Store) -> None:
    conversation = store.create_conversation()
    q1 = store.add_user_message(conversation.id, "one")
    a1 = answer(store, conversation.id, q1.id, "uno")
    q2 = store.add_user_message(conversation.id, "two")

    branch = store.branch(conversation.id)

    assert [(m.id, m.role, m.parent_id) for m in branch] == [
        (q1.id, Role.USER, None),
        (a1, Role.ASSISTANT, q1.id),
        (q2.id, Role.USER, a1),
    ]
    assert [m.alternatives for m in branch] == [(q1.id,), (a1,), (q2.id,)]


def test_regenerate_adds_a_second_answer_and_keeps_the_first_as_an_alternative(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "pick a number")
    first = answer(store, conversation.id, question.id, "4")

    second = store.regenerate(conversation.id, first, model="m", stream_id="s2")

    assert second.parent_id == question.id
    assert second.status == Status.STREAMING
    assert second.alternatives == (first, second.id)
    shown = store.branch(conversation.id)
    assert [m.id for m in shown] == [question.id, second.id]
    assert shown[-1].alternatives == (first, second.id)


def test_editing_a_user_message_adds_a_sibling_and_keeps_the_old_branch(store: Store) -> None:
    conversation = store.create_conversation()
    q1 = store.add_user_message(conversation.id, "hello")
    a1 = answer(store, conversation.id, q1.id, "hi")
    q2 = store.add_user_message(conversation.id, "whats 2+2")
    answer(store, conversation.id, q2.id, "4")

    edited = store.edit_user_message(conversation.id, q2.id, "what's 2+3?")

    assert edited.parent_id == a1
    assert edited.alternatives == (q2.id, edited.id)
    assert [m.id for m in store.branch(conversation.id)] == [q1.id, a1, edited.id]


def test_editing_the_first_message_makes_a_second_root(store: Store) -> None:
    conversation = store.create_conversation()
    q1 = store.add_user_message(conversation.id, "helo")

    edited = store.edit_user_message(conversation.id, q1.id, "hello")

    assert edited.parent_id is None
    assert edited.alternatives == (q1.id, edited.id)
    assert [m.id for m in store.branch(conversation.id)] == [edited.id]


def test_a_parent_id_branches_from_an_earlier_message(store: Store) -> None:
    conversation = store.create_conversation()
    q1 = store.add_user_message(conversation.id, "hello")
    a1 = answer(store, conversation.id, q1.id, "hi")
    old = store.add_user_message(conversation.id, "tell me a joke")

    new = store.add_user_message(conversation.id, "tell me a poem", parent_id=a1)

    assert new.alternatives == (old.id, new.id)
    assert [m.id for m in store.branch(conversation.id)] == [q1.id, a1, new.id]


def test_at_root_adds_a_new_first_message_beside_the_others(store: Store) -> None:
    conversation = store.create_conversation()
    first = store.add_user_message(conversation.id, "hello")
    answer(store, conversation.id, first.id, "hi")

    again = store.add_user_message(conversation.id, "start over", at_root=True)

    assert again.parent_id is None
    assert again.alternatives == (first.id, again.id)
    assert [m.id for m in store.branch(conversation.id)] == [again.id]
    with pytest.raises(ValueError, match="no parent"):
        store.add_user_message(conversation.id, "x", first.id, at_root=True)


def test_choosing_an_alternative_shows_the_newest_leaf_under_it(store: Store) -> None:
    conversation = store.create_conversation()
    q1 = store.add_user_message(conversation.id, "hello")
    a1 = answer(store, conversation.id, q1.id, "hi")
    q2 = store.add_user_message(conversation.id, "and then?")
    a2 = answer(store, conversation.id, q2.id, "then this")
    other = store.regenerate(conversation.id, a1, model="m", stream_id="s3")

    back = store.set_current_leaf(conversation.id, a1)

    assert [m.id for m in back] == [q1.id, a1, q2.id, a2]
    assert back[1].alternatives == (a1, other.id)
    assert store.get_conversation(conversation.id).current_leaf_id == a2
    assert [m.id for m in store.branch(conversation.id, leaf_id=other.id)] == [q1.id, other.id]


def test_a_parent_from_another_conversation_is_an_invalid_parent(store: Store) -> None:
    mine = store.create_conversation()
    theirs = store.create_conversation()
    foreign = store.add_user_message(theirs.id, "not yours")

    with pytest.raises(InvalidParent):
        store.add_user_message(mine.id, "hi", parent_id=foreign.id)
    with pytest.raises(InvalidParent):
        store.add_user_message(mine.id, "hi", parent_id="no-such-message")
    with pytest.raises(InvalidParent):
        store.start_assistant_message(mine.id, foreign.id, model="m", stream_id="s")
    assert message_count(store) == 1
    assert store.get_conversation(mine.id).title is None


def test_an_answer_must_follow_a_user_message(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    reply = answer(store, conversation.id, question.id, "hello")

    with pytest.raises(InvalidParent):
        store.start_assistant_message(conversation.id, reply, model="m", stream_id="s")


def test_only_answers_regenerate_and_only_questions_are_edited(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    reply = answer(store, conversation.id, question.id, "hello")

    with pytest.raises(WrongRole):
        store.regenerate(conversation.id, question.id, model="m", stream_id="s")
    with pytest.raises(WrongRole):
        store.edit_user_message(conversation.id, reply, "changed")
    with pytest.raises(MessageNotFound):
        store.regenerate(conversation.id, "nope", model="m", stream_id="s")


def test_a_message_of_another_conversation_is_not_found_in_this_one(store: Store) -> None:
    mine = store.create_conversation()
    theirs = store.create_conversation()
    foreign = store.add_user_message(theirs.id, "not yours")

    with pytest.raises(MessageNotFound):
        store.get_message(mine.id, foreign.id)
    with pytest.raises(MessageNotFound):
        store.set_current_leaf(mine.id, foreign.id)
    with pytest.raises(MessageNotFound):
        store.branch(mine.id, leaf_id=foreign.id)


# Sending a message, or regenerating, in one unit (Store.ask, Store.ask_again)


def ask(store: Store, conversation_id: str, content: str, **options: object) -> Turn:
    return store.ask(
        conversation_id, content, **{"model": None, "default_model": "default", "stream_id": "s", **options}
    )


def test_ask_adds_the_question_after_the_branch_on_display_and_starts_its_answer(store: Store) -> None:
    conversation = store.create_conversation()
    q1 = store.add_user_message(conversation.id, "one")
    a1 = answer(store, conversation.id, q1.id, "uno")

    turn = ask(store, conversation.id, "two", stream_id="live")

    shown = store.branch(conversation.id)
    assert [m.id for m in shown] == [q1.id, a1, turn.question_id, turn.answer.id]
    assert (shown[2].role, shown[2].content, shown[2].parent_id) == (Role.USER, "two", a1)
    assert (turn.answer.parent_id, turn.answer.status, turn.answer.stream_id) == (
        turn.question_id,
        Status.STREAMING,
        "live",
    )
    assert store.get_conversation(conversation.id).current_leaf_id == turn.answer.id


def test_ask_returns_the_models_context_from_the_system_prompt_to_the_question(store: Store) -> None:
    conversation = store.create_conversation(system_prompt="You are terse.")
    q1 = store.add_user_message(conversation.id, "count to ten")
    started = store.start_assistant_message(conversation.id, q1.id, model="m", stream_id="s")
    store.finish_message(started.id, status=Status.STOPPED, content="1, 2, 3, ")

    turn = ask(store, conversation.id, "why did you stop?")

    assert turn.context == [
        ("system", "You are terse."),
        ("user", "count to ten"),
        ("assistant", "1, 2, 3, "),
        ("user", "why did you stop?"),
    ]
    assert turn.context == store.context_for(conversation.id, turn.question_id)


def test_ask_returns_the_conversation_as_it_was_and_records_that_a_read_returns(store: Store) -> None:
    conversation = store.create_conversation(model="m", temperature=0.25)

    turn = ask(store, conversation.id, "  a  question  ")

    assert turn.conversation == conversation
    assert turn.answer == store.get_message(conversation.id, turn.answer.id)
    assert turn.answer.created_at > store.get_message(conversation.id, turn.question_id).created_at


def test_the_first_question_asked_names_the_conversation(store: Store) -> None:
    conversation = store.create_conversation()

    ask(store, conversation.id, "What is a monad, really?")

    assert store.get_conversation(conversation.id).title == "What is a monad, really?"


def test_ask_with_a_parent_branches_from_that_answer_and_with_none_from_the_top(store: Store) -> None:
    conversation = store.create_conversation()
    q1 = store.add_user_message(conversation.id, "hello")
    a1 = answer(store, conversation.id, q1.id, "hi")
    store.add_user_message(conversation.id, "old question")

    branched = ask(store, conversation.id, "new question", parent_id=a1)
    anew = ask(store, conversation.id, "start over", parent_id=None)

    assert [m.id for m in store.branch(conversation.id, branched.answer.id)] == [
        q1.id,
        a1,
        branched.question_id,
        branched.answer.id,
    ]
    assert store.get_message(conversation.id, anew.question_id).alternatives == (q1.id, anew.question_id)
    assert [m.id for m in store.branch(conversation.id)] == [anew.question_id, anew.answer.id]


def test_the_answer_is_in_the_model_asked_else_the_conversations_else_the_default(store: Store) -> None:
    plain = store.create_conversation()
    chosen = store.create_conversation(model="chosen")

    assert ask(store, chosen.id, "q", model="asked").model == "asked"
    assert ask(store, chosen.id, "q").answer.model == "chosen"
    assert ask(store, plain.id, "q").model == "default"


def test_ask_refuses_an_unknown_conversation(store: Store) -> None:
    with pytest.raises(ConversationNotFound):
        ask(store, "no-such-conversation", "hi")


def test_ask_refuses_a_parent_that_is_not_an_answer_of_this_conversation_and_writes_nothing(
    store: Store,
) -> None:
    mine = store.create_conversation()
    theirs = store.create_conversation()
    question = store.add_user_message(mine.id, "mine")
    foreign = answer(store, theirs.id, store.add_user_message(theirs.id, "theirs").id, "ok")
    before = message_count(store)

    with pytest.raises(InvalidParent) as elsewhere:
        ask(store, mine.id, "hi", parent_id=foreign)
    with pytest.raises(InvalidParent) as unknown:
        ask(store, mine.id, "hi", parent_id="no-such-message")
    with pytest.raises(InvalidParent) as not_an_answer:
        ask(store, mine.id, "hi")  # the branch on display ends with a question

    assert elsewhere.value.reason == unknown.value.reason == NOT_IN_CONVERSATION
    assert not_an_answer.value.reason == NOT_AN_ANSWER
    assert not_an_answer.value.message_id == question.id
    assert message_count(store) == before


def test_ask_refuses_a_conversation_that_would_pass_max_chars_and_writes_nothing(store: Store) -> None:
    """The system prompt, the branch and the question count: 6 + 5 + 2 + 3 characters here."""
    conversation = store.create_conversation(system_prompt="terse.")
    q1 = store.add_user_message(conversation.id, "hello")
    answer(store, conversation.id, q1.id, "hi")
    before = message_count(store)

    with pytest.raises(ConversationTooLong) as refused:
        ask(store, conversation.id, "why", max_chars=15)

    assert (refused.value.total, refused.value.limit) == (16, 15)
    assert message_count(store) == before
    assert ask(store, conversation.id, "why", max_chars=16).context[-1] == ("user", "why")


def test_ask_again_starts_another_answer_beside_the_first_with_the_context_to_its_question(
    store: Store,
) -> None:
    conversation = store.create_conversation(system_prompt="Be brief.")
    question = store.add_user_message(conversation.id, "pick a number")
    first = answer(store, conversation.id, question.id, "4")

    turn = store.ask_again(conversation.id, first, model=None, default_model="default", stream_id="s2")

    assert turn.question_id == question.id
    assert turn.context == [("system", "Be brief."), ("user", "pick a number")]
    assert (turn.answer.parent_id, turn.answer.status, turn.answer.model) == (
        question.id,
        Status.STREAMING,
        "default",
    )
    assert turn.answer.alternatives == (first, turn.answer.id)
    assert [m.id for m in store.branch(conversation.id)] == [question.id, turn.answer.id]


def test_ask_again_refuses_a_question_and_an_unknown_message(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    answer(store, conversation.id, question.id, "hello")

    with pytest.raises(WrongRole):
        store.ask_again(conversation.id, question.id, model=None, default_model="m", stream_id="s")
    with pytest.raises(MessageNotFound):
        store.ask_again(conversation.id, "nope", model=None, default_model="m", stream_id="s")
    with pytest.raises(ConversationNotFound):
        store.ask_again("nope", question.id, model=None, default_model="m", stream_id="s")


# Answers written while they stream


def test_checkpoints_save_the_text_so_far_and_finish_writes_how_it_ended(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    started = store.start_assistant_message(conversation.id, question.id, model="asked", stream_id="live")
    assert store.checkpoint(started.id, "Hel", "thinking")
    assert store.get_message(conversation.id, started.id).content == "Hel"

    done = store.finish_message(
        started.id,
        status=Status.COMPLETE,
        content="Hello!",
        reasoning="thinking hard",
        finish_reason="stop",
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
        model="served-2024",
        ttft_ms=120,
        duration_ms=900,
    )

    assert done == store.get_message(conversation.id, started.id)
    assert (done.content, done.reasoning, done.status, done.finish_reason) == (
        "Hello!",
        "thinking hard",
        Status.COMPLETE,
        "stop",
    )
    assert (done.model, done.ttft_ms, done.duration_ms, done.stream_id) == ("served-2024", 120, 900, None)
    assert done.usage == Usage(3, 2, 5, estimated=False)
    assert store.get_conversation(conversation.id).updated_at >= done.updated_at


def test_a_stopped_answer_keeps_its_partial_text_and_an_estimated_usage(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "count to 100")
    started = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="s")

    stopped = store.finish_message(
        started.id,
        status=Status.STOPPED,
        content="1, 2, 3",
        finish_reason="cancelled",
        usage=Usage(5, 3, 8, estimated=True),
    )

    assert (stopped.status, stopped.content, stopped.model) == (Status.STOPPED, "1, 2, 3", "m")
    assert stopped.usage is not None
    assert stopped.usage.estimated


def test_an_error_is_kept_with_its_code_and_message(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    started = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="s")

    failed = store.finish_message(
        started.id,
        status=Status.ERROR,
        content="Hel",
        finish_reason="error",
        error_code="upstream_disconnected",
        error_message="The connection broke.",
    )

    assert (failed.status, failed.error_code, failed.error_message, failed.usage) == (
        Status.ERROR,
        "upstream_disconnected",
        "The connection broke.",
        None,
    )


def test_a_checkpoint_after_the_end_writes_nothing_and_a_second_end_changes_nothing(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    started = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="s")
    store.finish_message(started.id, status=Status.COMPLETE, content="done")

    assert not store.checkpoint(started.id, "late text")
    again = store.finish_message(started.id, status=Status.ERROR, content="other")

    assert (again.status, again.content) == (Status.COMPLETE, "done")


def test_finish_takes_only_a_final_status(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    started = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="s")

    with pytest.raises(ValueError, match="ends as one of"):
        store.finish_message(started.id, status=Status.STREAMING, content="")
    with pytest.raises(MessageNotFound):
        store.finish_message("nope", status=Status.COMPLETE, content="")


def test_finish_answer_writes_what_finish_message_writes_without_reading_it_back(store: Store) -> None:
    conversation = store.create_conversation()
    quiet = ask(store, conversation.id, "hi", stream_id="a").answer
    loud = ask(store, conversation.id, "hi", parent_id=None, stream_id="b").answer
    outcome = Outcome(
        Status.COMPLETE,
        finish_reason="stop",
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
        model="served-2024",
        ttft_ms=120,
        duration_ms=900,
    )

    assert store.finish_answer(quiet.id, "Hello!", "thinking", outcome) is True
    ended_so = {f.name: getattr(outcome, f.name) for f in fields(outcome)}
    done = store.finish_message(loud.id, content="Hello!", reasoning="thinking", **ended_so)

    written = store.get_message(conversation.id, quiet.id)
    unlike = {"id", "parent_id", "created_at", "updated_at", "alternatives"}
    assert {k: v for k, v in asdict(written).items() if k not in unlike} == {
        k: v for k, v in asdict(done).items() if k not in unlike
    }
    assert store.get_conversation(conversation.id).updated_at >= written.updated_at > quiet.updated_at


def test_finish_answer_leaves_an_ended_answer_as_it_was_and_refuses_an_unknown_one(store: Store) -> None:
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi").answer
    store.finish_message(started.id, status=Status.STOPPED, content="kept")

    assert store.finish_answer(started.id, "other", None, Outcome(Status.ERROR)) is False
    kept = store.get_message(conversation.id, started.id)
    assert (kept.status, kept.content) == (Status.STOPPED, "kept")
    with pytest.raises(MessageNotFound):
        store.finish_answer("nope", "", None, Outcome(Status.COMPLETE))
    with pytest.raises(ValueError, match="ends as one of"):
        store.finish_answer(started.id, "", None, Outcome(Status.STREAMING))


def test_checkpoint_many_saves_every_streaming_answer_in_one_call_and_names_those_written(
    store: Store,
) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    live, ended, revived = (
        store.start_assistant_message(conversation.id, question.id, model="m", stream_id=stream)
        for stream in ("live", "ended", "revived")
    )
    store.finish_message(ended.id, status=Status.STOPPED, content="kept")
    store.mark_orphans_interrupted(timedelta(0), is_live=lambda stream_id: stream_id != "revived")

    written = store.checkpoint_many(
        [
            (ended.id, "late", None),
            (live.id, "Hel", "thinking"),
            ("nope", "no such answer", None),
            (revived.id, "still here", None),
        ]
    )

    assert written == [live.id, revived.id]
    read = {m: store.get_message(conversation.id, m) for m in (live.id, ended.id, revived.id)}
    assert (read[live.id].content, read[live.id].reasoning, read[live.id].status) == (
        "Hel",
        "thinking",
        Status.STREAMING,
    )
    assert (read[ended.id].content, read[ended.id].status) == ("kept", Status.STOPPED)
    assert (read[revived.id].content, read[revived.id].status) == ("still here", Status.STREAMING)
    assert read[live.id].updated_at > live.updated_at


def test_checkpoint_many_of_nothing_writes_nothing(store: Store) -> None:
    assert store.checkpoint_many([]) == []


def test_a_checkpoint_many_proves_its_answers_alive_to_the_orphan_sweep(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    saved, stale = (
        store.start_assistant_message(conversation.id, question.id, model="m", stream_id=stream)
        for stream in ("saved", "stale")
    )
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    store.run(lambda c: c.execute(update(MessageRow).values(updated_at=an_hour_ago)), write=True)

    store.checkpoint_many([(saved.id, "", None)])

    assert store.mark_orphans_interrupted(timedelta(minutes=1)) == [stale.id]


def test_the_records_writes_return_are_what_a_read_returns(store: Store) -> None:
    """Writes build their records from what they wrote instead of reading it back: the same fields."""
    conversation = store.create_conversation(title="t", model="m", temperature=0.25)
    question = store.add_user_message(conversation.id, "  a  question  ")
    started = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="s")
    renamed = store.update_conversation(conversation.id, title="renamed", max_tokens=7)

    assert question == store.get_message(conversation.id, question.id)
    assert started == store.get_message(conversation.id, started.id)
    assert renamed == store.get_conversation(conversation.id)
    assert renamed.current_leaf_id == started.id


# Orphans: answers whose worker died


def test_an_orphaned_answer_becomes_interrupted_with_its_last_saved_text(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    started = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="dead")
    store.checkpoint(started.id, "Hello, wor")

    marked = store.mark_orphans_interrupted(timedelta(0), is_live=lambda stream_id: False)

    assert marked == [started.id]
    orphan = store.get_message(conversation.id, started.id)
    assert (orphan.status, orphan.content, orphan.stream_id) == (Status.INTERRUPTED, "Hello, wor", None)


def test_a_live_or_recently_checkpointed_answer_is_not_an_orphan(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    live = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="live")
    recent = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="elsewhere")

    by_liveness = store.mark_orphans_interrupted(timedelta(0), is_live=lambda stream_id: stream_id == "live")
    by_age = store.mark_orphans_interrupted(timedelta(minutes=1))

    assert by_liveness == [recent.id]
    assert by_age == []
    assert store.get_message(conversation.id, live.id).status == Status.STREAMING


def test_orphans_can_be_looked_for_in_one_conversation(store: Store) -> None:
    conversations = [store.create_conversation() for _ in range(2)]
    started = []
    for conversation in conversations:
        question = store.add_user_message(conversation.id, "hi")
        started.append(store.start_assistant_message(conversation.id, question.id, model="m", stream_id="x"))

    marked = store.mark_orphans_interrupted(timedelta(0), conversation_id=conversations[1].id)

    assert marked == [started[1].id]


def test_a_checkpoint_revives_an_answer_marked_interrupted_while_its_stream_was_alive(store: Store) -> None:
    """A stream that was only slow must not lose its answer to the orphan sweep of another worker."""
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    started = store.start_assistant_message(conversation.id, question.id, model="m", stream_id="slow")
    store.mark_orphans_interrupted(timedelta(0))

    assert store.checkpoint(started.id, "still here")
    done = store.finish_message(started.id, status=Status.COMPLETE, content="still here!")

    assert (done.status, done.content) == (Status.COMPLETE, "still here!")


# The model's context


def test_the_context_starts_with_the_system_prompt_and_keeps_a_stopped_answers_partial_text(
    store: Store,
) -> None:
    conversation = store.create_conversation(system_prompt="You are terse.")
    q1 = store.add_user_message(conversation.id, "count to ten")
    started = store.start_assistant_message(conversation.id, q1.id, model="m", stream_id="s")
    store.finish_message(started.id, status=Status.STOPPED, content="1, 2, 3, ")
    q2 = store.add_user_message(conversation.id, "why did you stop?")

    assert store.context_for(conversation.id, q2.id) == [
        ("system", "You are terse."),
        ("user", "count to ten"),
        ("assistant", "1, 2, 3, "),
        ("user", "why did you stop?"),
    ]


def test_the_context_follows_the_branch_of_the_message_asked_for(store: Store) -> None:
    conversation = store.create_conversation()
    q1 = store.add_user_message(conversation.id, "hello")
    a1 = answer(store, conversation.id, q1.id, "hi")
    old = store.add_user_message(conversation.id, "old question")
    store.add_user_message(conversation.id, "new question", parent_id=a1)

    assert store.context_for(conversation.id, old.id) == [
        ("user", "hello"),
        ("assistant", "hi"),
        ("user", "old question"),
    ]
    with pytest.raises(WrongRole):
        store.context_for(conversation.id, a1)


def test_a_read_returns_the_conversation_and_the_branch_on_display_together(store: Store) -> None:
    conversation = store.create_conversation()
    question = store.add_user_message(conversation.id, "hi")
    reply = answer(store, conversation.id, question.id, "hello")

    view = store.read_conversation(conversation.id)

    assert view.conversation.current_leaf_id == reply
    assert [m.content for m in view.messages] == ["hi", "hello"]


# The connections


def sqlite_store(folder: Path, busy_timeout_s: float = 10.0) -> Store:
    url = str(database_url(None, folder))
    upgrade_to_head(url)
    return Store.open(url, busy_timeout_s=busy_timeout_s)


def test_threads_may_share_a_sqlite_store(tmp_path: Path) -> None:
    """`flask run` serves from several threads: each connection is still used by its own thread only
    (sqlite3 checks, and would raise "SQLite objects created in a thread...")."""
    store = sqlite_store(tmp_path)
    conversation = store.create_conversation()

    def converse(n: int) -> int:
        for i in range(20):
            question = store.add_user_message(conversation.id, f"{n}.{i}", at_root=True)
            store.context_for(conversation.id, question.id)
        return n

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert sorted(pool.map(converse, range(8))) == list(range(8))
        assert message_count(store) == 160
    finally:
        store.close()


def test_a_unit_that_found_sqlite_locked_leaves_the_store_usable(tmp_path: Path) -> None:
    """The connection is kept: a unit that failed at BEGIN must not leave it in a transaction."""
    store = sqlite_store(tmp_path, busy_timeout_s=0.05)
    conversation = store.create_conversation()
    other = sqlite3.connect(tmp_path / "chatapp.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"):
            store.add_user_message(conversation.id, "while locked")
        assert store.get_conversation(conversation.id).title is None  # reads go on under WAL
        other.execute("COMMIT")

        assert store.add_user_message(conversation.id, "after").content == "after"
        assert [m.content for m in store.branch(conversation.id)] == ["after"]
    finally:
        other.close()
        store.close()


def test_a_sqlite_store_never_closed_is_collected_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An app that never closes its store (a test's, a script's): collecting it must not touch its
    connections from the collecting thread, which sqlite3 refuses (and SQLAlchemy logs as errors)."""
    store = sqlite_store(tmp_path)
    store.create_conversation()

    del store
    gc.collect()

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_sqlite_unit_that_writes_must_say_so(tmp_path: Path) -> None:
    """Reads run on a connection of their own that refuses writes: a write there would take the
    write lock mid-transaction, where SQLite fails at once instead of waiting for it."""
    store = sqlite_store(tmp_path)
    try:
        with pytest.raises(OperationalError, match="readonly"):
            store.run(lambda c: c.execute(delete(ConversationRow)))
    finally:
        store.close()


# The engine


@pytest.mark.parametrize(
    ("given", "url"),
    [
        (None, "sqlite:////srv/instance/chatapp.sqlite3"),
        ("", "sqlite:////srv/instance/chatapp.sqlite3"),
        ("postgresql://u@db:5432/chat", "postgresql+psycopg://u@db:5432/chat"),
        ("postgres://u@db/chat", "postgresql+psycopg://u@db/chat"),
        ("postgresql+psycopg://u@db/chat", "postgresql+psycopg://u@db/chat"),
        ("sqlite:////data/other.db", "sqlite:////data/other.db"),
    ],
)
def test_database_url_defaults_to_sqlite_in_the_instance_folder_and_reads_postgres_as_psycopg(
    given: str | None, url: str
) -> None:
    assert database_url(given, "/srv/instance") == make_url(url)


def test_an_in_memory_sqlite_database_is_refused() -> None:
    with pytest.raises(ValueError, match="SQLite file"):
        Store.open("sqlite://")
