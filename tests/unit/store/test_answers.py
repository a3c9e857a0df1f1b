"""An answer while it streams and at its end (chatapp/store/answers.py): `Store.checkpoint_many`
saves the text so far, `Store.finish_answer` writes how it ended, once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatapp.store import MessageNotFound, Outcome, Status, Store, Usage

from .steps import answer_again, ask


def test_a_checkpoint_saves_the_text_so_far_and_keeps_the_answer_streaming(store: Store) -> None:
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi", stream_id="live").answer

    assert store.checkpoint_many([(started.id, "Hel", "thinking")]) == [started.id]

    saved = store.get_message(conversation.id, started.id)
    assert (saved.content, saved.reasoning, saved.status, saved.stream_id) == (
        "Hel",
        "thinking",
        Status.STREAMING,
        "live",
    )
    assert saved.updated_at > started.updated_at


def test_finish_answer_writes_the_final_text_and_how_it_ended(store: Store) -> None:
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi", model="asked").answer
    outcome = Outcome(
        Status.COMPLETE,
        finish_reason="stop",
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
        model="served-2024",
        ttft_ms=120,
        duration_ms=900,
    )

    assert store.finish_answer(started.id, "Hello!", "thinking hard", outcome) is True

    done = store.get_message(conversation.id, started.id)
    assert (done.content, done.reasoning, done.status, done.finish_reason) == (
        "Hello!",
        "thinking hard",
        Status.COMPLETE,
        "stop",
    )
    assert (done.model, done.ttft_ms, done.duration_ms, done.stream_id) == ("served-2024", 120, 900, None)
    assert (done.error_code, done.error_message) == (None, None)
    assert done.usage == Usage(3, 2, 5, estimated=False)
    assert store.get_conversation(conversation.id).updated_at >= done.updated_at > started.updated_at


def test_a_stopped_answer_keeps_its_partial_text_its_model_and_an_estimated_usage(store: Store) -> None:
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "count to 100", model="m").answer
    outcome = Outcome(Status.STOPPED, finish_reason="cancelled", usage=Usage(5, 3, 8, estimated=True))

    store.finish_answer(started.id, "1, 2, 3", None, outcome)

    stopped = store.get_message(conversation.id, started.id)
    assert (stopped.status, stopped.content, stopped.model) == (Status.STOPPED, "1, 2, 3", "m")
    assert stopped.usage == Usage(5, 3, 8, estimated=True)


def test_an_error_is_kept_with_its_code_and_message(store: Store) -> None:
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi").answer
    outcome = Outcome(
        Status.ERROR,
        finish_reason="error",
        error_code="upstream_disconnected",
        error_message="The connection broke.",
    )

    store.finish_answer(started.id, "Hel", None, outcome)

    failed = store.get_message(conversation.id, started.id)
    assert (failed.status, failed.content, failed.error_code, failed.error_message, failed.usage) == (
        Status.ERROR,
        "Hel",
        "upstream_disconnected",
        "The connection broke.",
        None,
    )


def test_a_checkpoint_after_the_end_writes_nothing_and_a_second_end_changes_nothing(store: Store) -> None:
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi").answer
    store.finish_answer(started.id, "kept", None, Outcome(Status.STOPPED))

    assert store.checkpoint_many([(started.id, "late text", None)]) == []
    assert store.finish_answer(started.id, "other", None, Outcome(Status.ERROR)) is False

    kept = store.get_message(conversation.id, started.id)
    assert (kept.status, kept.content) == (Status.STOPPED, "kept")


def test_an_answer_ends_only_with_a_final_status_and_only_when_it_exists(store: Store) -> None:
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi").answer

    with pytest.raises(ValueError, match="ends as one of"):
        store.finish_answer(started.id, "", None, Outcome(Status.STREAMING))
    with pytest.raises(MessageNotFound):
        store.finish_answer("nope", "", None, Outcome(Status.COMPLETE))

    assert store.get_message(conversation.id, started.id).status == Status.STREAMING


def test_checkpoint_many_saves_every_streaming_answer_in_one_call_and_names_those_written(
    store: Store,
) -> None:
    conversation = store.create_conversation()
    live = ask(store, conversation.id, "hi", stream_id="live").answer
    ended, revived = (answer_again(store, conversation.id, live.id, stream).answer for stream in ("e", "r"))
    store.finish_answer(ended.id, "kept", None, Outcome(Status.STOPPED))
    store.mark_orphans_interrupted(timedelta(0), is_live=lambda stream_id: stream_id != "r")

    # Given in the reverse of the ids' order, so that the order written back is the one given.
    first, second = sorted([(live.id, "Hel", "thinking"), (revived.id, "still here", None)], reverse=True)

    written = store.checkpoint_many(
        [(ended.id, "late", None), first, ("nope", "no such answer", None), second]
    )

    assert written == [first[0], second[0]]
    read = {m: store.get_message(conversation.id, m) for m in (live.id, ended.id, revived.id)}
    assert (read[live.id].content, read[live.id].reasoning, read[live.id].status) == (
        "Hel",
        "thinking",
        Status.STREAMING,
    )
    assert (read[ended.id].content, read[ended.id].status) == ("kept", Status.STOPPED)
    assert (read[revived.id].content, read[revived.id].status) == ("still here", Status.STREAMING)


def test_checkpoint_many_of_nothing_costs_no_unit_of_work(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process with no live answer checkpoints nothing every interval: no transaction for it."""

    def no_unit(*args: object, **kwargs: object) -> None:
        raise AssertionError("a unit of work ran")

    monkeypatch.setattr(store, "run", no_unit)

    assert store.checkpoint_many([]) == []


# An answer the orphan sweep marked `interrupted` while its stream was alive, only slow


def test_a_checkpoint_revives_an_answer_marked_interrupted_while_its_stream_was_alive(store: Store) -> None:
    """A stream that was only slow must not lose its answer to the orphan sweep of another worker."""
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi", stream_id="slow").answer
    assert store.mark_orphans_interrupted(timedelta(0)) == [started.id]

    assert store.checkpoint_many([(started.id, "still here", None)]) == [started.id]
    assert store.get_message(conversation.id, started.id).status == Status.STREAMING
    assert store.finish_answer(started.id, "still here!", None, Outcome(Status.COMPLETE)) is True

    done = store.get_message(conversation.id, started.id)
    assert (done.status, done.content) == (Status.COMPLETE, "still here!")


def test_an_answer_marked_interrupted_while_its_stream_was_alive_can_still_end(store: Store) -> None:
    """Its stream's end wins even with no checkpoint between the sweep and the end."""
    conversation = store.create_conversation()
    started = ask(store, conversation.id, "hi", stream_id="slow").answer
    assert store.mark_orphans_interrupted(timedelta(0)) == [started.id]

    assert store.finish_answer(started.id, "done", None, Outcome(Status.COMPLETE)) is True

    assert store.get_message(conversation.id, started.id).status == Status.COMPLETE
