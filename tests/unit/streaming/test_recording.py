"""Keeping a stored answer while it streams (chatapp/streaming/recording.py), against a real `Store` on
a SQLite file: `AnswerRecorder` gathers each read's events, `CheckpointWriter.write_due` saves the
text so far of every live answer in one unit, `ended()` writes the end with the status
`status_for` gives it, and `mark_orphans` marks answers a dead worker left `interrupted`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from chatapp.llm.base import ReasoningDelta, TextDelta, Usage
from chatapp.protocol import FinishReason, StreamErrorCode
from chatapp.store import Message, Status, Store, upgrade_to_head
from chatapp.store.models import MessageRow
from chatapp.store.records import Usage as StoredUsage
from chatapp.streaming.recording import (
    CHARS_PER_TOKEN,
    TOUCH_EVERY,
    AnswerRecorder,
    AnswerTarget,
    CheckpointWriter,
    status_for,
)
from chatapp.streaming.registry import Cause
from chatapp.streaming.stream_end import StreamEnd

QUESTION = "What is a checkpoint?"


class CountingStore:
    """The store, with every `checkpoint_many` call it was asked to make kept."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.checkpoints: list[list[str]] = []
        original = store.checkpoint_many

        def checkpoint_many(snapshots: Sequence[tuple[str, str, str | None]]) -> list[str]:
            self.checkpoints.append([message_id for message_id, _, _ in snapshots])
            return original(snapshots)

        store.checkpoint_many = checkpoint_many  # type: ignore[method-assign]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    upgrade_to_head(url)
    store = Store.open(url)
    yield store
    store.close()


@pytest.fixture
def counted(store: Store) -> CountingStore:
    return CountingStore(store)


def start_answer(store: Store, stream_id: str = "stream") -> Message:
    conversation = store.create_conversation()
    turn = store.ask(conversation.id, QUESTION, model=None, default_model="m", stream_id=stream_id)
    return turn.answer


def recorder_for(store: Store, writer: CheckpointWriter, answer: Message) -> AnswerRecorder:
    recorder = AnswerRecorder(store, AnswerTarget(answer.id, prompt_chars=len(QUESTION)), writer)
    recorder.began()
    return recorder


def stored(store: Store, answer: Message) -> Message:
    return store.get_message(answer.conversation_id, answer.id)


def end(
    reason: FinishReason,
    cause: Cause | None = None,
    error: tuple[StreamErrorCode, str] | None = None,
) -> StreamEnd:
    return StreamEnd(reason, cause, error, served_model="served", ttft_ms=12, duration_ms=345)


def test_a_checkpoint_saves_the_text_so_far_of_every_changed_answer_in_one_unit(
    store: Store, counted: CountingStore
) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: True)
    answers = [start_answer(store, "one"), start_answer(store, "two")]
    first, second = (recorder_for(store, writer, answer) for answer in answers)
    first.seen([ReasoningDelta("Hmm. "), TextDelta("Hel")])
    first.seen([TextDelta("lo")])
    second.seen([TextDelta("Hi")])

    writer.write_due()

    assert len(counted.checkpoints) == 1
    assert sorted(counted.checkpoints[0]) == sorted(a.id for a in answers)
    saved = [stored(store, answer) for answer in answers]
    assert [(m.content, m.reasoning, m.status) for m in saved] == [
        ("Hello", "Hmm. ", Status.STREAMING),
        ("Hi", None, Status.STREAMING),
    ]


def test_an_unchanged_answer_is_touched_only_every_touch_every_checkpoints(
    store: Store, counted: CountingStore
) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: True)
    recorder = recorder_for(store, writer, start_answer(store))
    recorder.seen([TextDelta("a")])
    writer.write_due()
    counted.checkpoints.clear()

    for _ in range(TOUCH_EVERY - 1):
        writer.write_due()
    assert counted.checkpoints == [], "an answer with nothing new was written before it was due"
    writer.write_due()
    assert len(counted.checkpoints) == 1


def test_an_answer_that_changed_is_saved_at_the_next_checkpoint(store: Store, counted: CountingStore) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: True)
    answer = start_answer(store)
    recorder = recorder_for(store, writer, answer)
    recorder.seen([TextDelta("a")])
    writer.write_due()

    recorder.seen([TextDelta("b")])
    writer.write_due()

    assert len(counted.checkpoints) == 2
    assert stored(store, answer).content == "ab"


def test_ended_writes_the_final_answer_and_stops_its_checkpoints(
    store: Store, counted: CountingStore
) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: True)
    answer = start_answer(store)
    recorder = recorder_for(store, writer, answer)
    recorder.seen([TextDelta("Done"), TextDelta(".")])

    recorder.ended(end(FinishReason.STOP))
    for _ in range(TOUCH_EVERY):
        writer.write_due()

    final = stored(store, answer)
    assert (final.status, final.content, final.finish_reason) == (Status.COMPLETE, "Done.", "stop")
    assert (final.model, final.ttft_ms, final.duration_ms, final.stream_id) == ("served", 12, 345, None)
    assert counted.checkpoints == []


def test_the_usage_the_model_reported_is_stored_as_it_is(store: Store) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: True)
    answer = start_answer(store)
    recorder = recorder_for(store, writer, answer)
    recorder.seen([TextDelta("ok"), Usage(prompt_tokens=7, completion_tokens=1, total_tokens=8)])

    recorder.ended(end(FinishReason.STOP))

    assert stored(store, answer).usage == StoredUsage(7, 1, 8, estimated=False)


def test_without_reported_usage_an_estimate_from_the_text_is_stored(store: Store) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: True)
    answer = start_answer(store)
    recorder = recorder_for(store, writer, answer)
    recorder.seen([ReasoningDelta("x" * 4), TextDelta("y" * 9)])

    recorder.ended(end(FinishReason.LENGTH))

    prompt = -(-len(QUESTION) // CHARS_PER_TOKEN)
    assert stored(store, answer).usage == StoredUsage(prompt, 4, prompt + 4, estimated=True)


def test_an_error_end_stores_its_code_and_message(store: Store) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: True)
    answer = start_answer(store)
    recorder = recorder_for(store, writer, answer)
    recorder.seen([TextDelta("par")])

    recorder.ended(end(FinishReason.ERROR, error=(StreamErrorCode.UPSTREAM_TIMEOUT, "took too long")))

    final = stored(store, answer)
    assert (final.status, final.content) == (Status.ERROR, "par")
    assert (final.error_code, final.error_message) == ("upstream_timeout", "took too long")


STATUS_TABLE = [
    (FinishReason.STOP, None, Status.COMPLETE),
    (FinishReason.LENGTH, None, Status.COMPLETE),
    (FinishReason.ERROR, None, Status.ERROR),
    (FinishReason.ERROR, Cause.MAX_DURATION, Status.ERROR),  # a stream over its time limit
    (FinishReason.CANCELLED, Cause.STOPPED, Status.STOPPED),
    (FinishReason.CANCELLED, Cause.CLIENT_GONE, Status.STOPPED),
    (FinishReason.CANCELLED, None, Status.STOPPED),
    (FinishReason.CANCELLED, Cause.SHUTDOWN, Status.INTERRUPTED),
    (FinishReason.CANCELLED, Cause.WRITE_TIMEOUT, Status.INTERRUPTED),
    (FinishReason.CANCELLED, Cause.UNREAD, Status.INTERRUPTED),
]


@pytest.mark.parametrize(("reason", "cause", "status"), STATUS_TABLE)
def test_status_for_how_the_stream_ended(reason: FinishReason, cause: Cause | None, status: Status) -> None:
    assert status_for(end(reason, cause)) == status


def test_the_status_table_covers_every_finish_reason_and_every_cause() -> None:
    assert {reason for reason, _, _ in STATUS_TABLE} == set(FinishReason)
    assert {cause for _, cause, _ in STATUS_TABLE} - {None} == set(Cause)


def backdate(store: Store, answer: Message, by: timedelta) -> None:
    when = datetime.now(UTC) - by
    store.run(
        lambda c: c.execute(update(MessageRow).where(MessageRow.id == answer.id).values(updated_at=when)),
        write=True,
    )


def test_mark_orphans_marks_an_old_streaming_answer_interrupted_unless_its_stream_runs_here(
    store: Store,
) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: stream_id == "alive")
    dead, alive = start_answer(store, "dead"), start_answer(store, "alive")
    for answer in (dead, alive):
        backdate(store, answer, writer.orphan_age + timedelta(minutes=1))

    assert writer.mark_orphans() == [dead.id]

    assert stored(store, dead).status == Status.INTERRUPTED
    assert stored(store, alive).status == Status.STREAMING


def test_an_answer_checkpointed_within_the_orphan_age_is_not_an_orphan(store: Store) -> None:
    writer = CheckpointWriter(store, interval_s=1, is_live=lambda stream_id: False)
    answer = start_answer(store)
    recorder_for(store, writer, answer)  # a silent model: nothing new to save, only touched
    backdate(store, answer, writer.orphan_age + timedelta(minutes=1))

    for _ in range(TOUCH_EVERY):
        writer.write_due()

    assert writer.mark_orphans() == []
    assert stored(store, answer).status == Status.STREAMING
