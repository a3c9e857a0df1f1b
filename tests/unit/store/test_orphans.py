"""Orphaned answers (chatapp/store/orphans.py): ones a dead worker left `streaming`, marked
`interrupted` with their last saved text by `Store.mark_orphans_interrupted`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from chatapp.store import Status, Store
from chatapp.store.models import MessageRow

from .steps import answer_again, ask


def test_an_orphaned_answer_becomes_interrupted_with_its_last_saved_text(store: Store) -> None:
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi", stream_id="dead").answer
    store.checkpoint_many([(started.id, "Hello, wor", None)])

    marked = store.mark_orphans_interrupted(timedelta(0), is_live=lambda stream_id: False)

    assert marked == [started.id]
    orphan = store.get_message(conversation.id, started.id)
    assert (orphan.status, orphan.content, orphan.stream_id) == (Status.INTERRUPTED, "Hello, wor", None)


def test_a_live_or_recently_checkpointed_answer_is_not_an_orphan(store: Store) -> None:
    conversation = store.create_conversation()
    live = ask(store, conversation.id, "hi", stream_id="live").answer
    elsewhere = answer_again(store, conversation.id, live.id, stream_id="elsewhere").answer

    by_age = store.mark_orphans_interrupted(timedelta(minutes=1))
    by_liveness = store.mark_orphans_interrupted(timedelta(0), is_live=lambda stream_id: stream_id == "live")

    assert by_age == []
    assert by_liveness == [elsewhere.id]
    assert store.get_message(conversation.id, live.id).status == Status.STREAMING


def test_a_checkpoint_proves_its_answer_alive_to_the_orphan_sweep(store: Store) -> None:
    conversation = store.create_conversation()
    saved = ask(store, conversation.id, "hi", stream_id="saved").answer
    stale = answer_again(store, conversation.id, saved.id, stream_id="stale").answer
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    store.run(lambda c: c.execute(update(MessageRow).values(updated_at=an_hour_ago)), write=True)

    store.checkpoint_many([(saved.id, "", None)])

    assert store.mark_orphans_interrupted(timedelta(minutes=1)) == [stale.id]


def test_orphans_can_be_looked_for_in_one_conversation(store: Store) -> None:
    conversations = [store.create_conversation() for _ in range(2)]
    started = [ask(store, conversation.id, "hi", stream_id="x").answer for conversation in conversations]

    marked = store.mark_orphans_interrupted(timedelta(0), conversation_id=conversations[1].id)

    assert marked == [started[1].id]
