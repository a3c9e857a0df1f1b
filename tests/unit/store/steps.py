"""What the app does to a store, as one call each, for the tests to build conversations with:
send a message (`Store.ask`), and let its answer stream to the end (`Store.finish_answer`)."""

from __future__ import annotations

from typing import TypedDict, Unpack

from sqlalchemy import func, select

from chatapp.store import Outcome, Status, Store, Turn
from chatapp.store.models import MessageRow
from chatapp.store.store import Unset

DEFAULT_MODEL = "default"


class AskOptions(TypedDict, total=False):
    """The keyword arguments of `Store.ask`, each with a default here."""

    parent_id: str | Unset | None
    model: str | None
    default_model: str
    stream_id: str
    max_chars: int | None


def ask(store: Store, conversation_id: str, content: str, **options: Unpack[AskOptions]) -> Turn:
    """Send `content` as the app does: after the branch on display unless `parent_id` says otherwise."""
    defaults: AskOptions = {"model": None, "default_model": DEFAULT_MODEL, "stream_id": "s"}
    chosen: AskOptions = {**defaults, **options}
    return store.ask(conversation_id, content, **chosen)


def answered(
    store: Store, conversation_id: str, content: str, text: str = "ok", **options: Unpack[AskOptions]
) -> Turn:
    """`ask`, then its answer ends `complete` with `text`."""
    turn = ask(store, conversation_id, content, **options)
    assert store.finish_answer(turn.answer.id, text, None, Outcome(Status.COMPLETE, finish_reason="stop"))
    return turn


def answer_again(store: Store, conversation_id: str, answer_id: str, stream_id: str = "s2") -> Turn:
    """Regenerate as the app does: another answer beside `answer_id`."""
    return store.ask_again(
        conversation_id, answer_id, model=None, default_model=DEFAULT_MODEL, stream_id=stream_id
    )


def message_count(store: Store) -> int:
    return store.run(lambda s: s.scalar(select(func.count()).select_from(MessageRow)) or 0)
