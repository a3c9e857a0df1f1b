"""Keeping a stored conversation's answer while it streams: `AnswerRecorder` and `CheckpointWriter`.

The relay hands the recorder each read's events (a list append, never a database
call per token). One `CheckpointWriter` per process saves the text so far of
every answer that changed, all in one unit of work, every `checkpoint_s`
seconds, and touches the unchanged ones every few intervals, which tells other
workers those answers are alive. A worker killed with SIGKILL therefore loses at
most one interval, and its answers are later found as orphans and marked
`interrupted` (store.mark_orphans_interrupted). An answer's end is written by
its own stream before the relay sends `done`, so a client that got `done` reads
the final answer back.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

from ..llm.base import BackendEvent, ReasoningDelta, TextDelta, Usage
from ..protocol import FinishReason
from ..store import Store
from ..store.messages import Outcome
from ..store.records import Status
from ..store.records import Usage as StoredUsage
from .registry import Cause
from .relay import StreamEnd

log = logging.getLogger(__name__)

# An unchanged answer (a silent model) is touched every this many checkpoints.
TOUCH_EVERY = 5
# An answer whose last checkpoint is this many intervals old, and whose stream runs nowhere, is an orphan.
ORPHAN_AFTER_CHECKPOINTS = 15
# A rough size of a token, for an estimate when the model never reported usage.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class AnswerTarget:
    """The stored answer a stream writes, and what it needs to estimate usage."""

    message_id: str
    prompt_chars: int


class AnswerRecorder:
    """One answer's text as it streams (a `relay.StreamObserver`)."""

    def __init__(self, store: Store, target: AnswerTarget, writer: CheckpointWriter) -> None:
        self._store = store
        self.target = target
        self._writer = writer
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._usage: Usage | None = None
        self.saved_parts = (0, 0)  # how many text and reasoning parts the last checkpoint held
        self.unchanged_ticks = 0

    def parts(self) -> tuple[int, int]:
        return len(self._text), len(self._reasoning)

    def snapshot(self) -> tuple[str, str | None]:
        return "".join(self._text), "".join(self._reasoning) or None

    def began(self) -> None:
        self._writer.add(self)

    def seen(self, events: list[BackendEvent]) -> None:
        for event in events:
            if type(event) is TextDelta:
                self._text.append(event.text)
            elif type(event) is ReasoningDelta:
                self._reasoning.append(event.text)
            elif type(event) is Usage:
                self._usage = event

    def ended(self, end: StreamEnd) -> None:
        self._writer.discard(self)
        text, reasoning = self.snapshot()
        code, message = end.error if end.error is not None else (None, None)
        outcome = Outcome(
            status=status_for(end),
            finish_reason=end.finish_reason,
            error_code=code,
            error_message=message,
            usage=self._final_usage(text, reasoning or ""),
            model=end.served_model,
            ttft_ms=end.ttft_ms,
            duration_ms=end.duration_ms,
        )
        self._store.finish_answer(self.target.message_id, text, reasoning, outcome)

    def _final_usage(self, text: str, reasoning: str) -> StoredUsage:
        if self._usage is not None:
            u = self._usage
            return StoredUsage(u.prompt_tokens, u.completion_tokens, u.total_tokens)
        prompt = math.ceil(self.target.prompt_chars / CHARS_PER_TOKEN)
        completion = math.ceil((len(text) + len(reasoning)) / CHARS_PER_TOKEN)
        return StoredUsage(prompt, completion, prompt + completion, estimated=True)


class CheckpointWriter:
    """Saves every live answer of this process that changed, in one unit of work per interval."""

    def __init__(self, store: Store, interval_s: float) -> None:
        self._store = store
        self._interval_s = interval_s
        self._live: set[AnswerRecorder] = set()
        self._thread: threading.Thread | None = None

    def add(self, recorder: AnswerRecorder) -> None:
        self._live.add(recorder)
        if self._thread is None:
            # Started on first use, so that under gunicorn it is a greenlet of the worker.
            self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
            self._thread.start()

    def discard(self, recorder: AnswerRecorder) -> None:
        self._live.discard(recorder)

    def _run(self) -> None:
        event = threading.Event()  # never set: a sleep that gevent and threads both honour
        while True:
            event.wait(self._interval_s)
            try:
                self.write_due()
            except Exception:  # a missed checkpoint costs one interval; the next one retries
                log.exception("checkpoint failed")

    def write_due(self) -> None:
        """One checkpoint of every answer whose text changed, or that is due to be touched."""
        due: list[tuple[AnswerRecorder, tuple[int, int]]] = []
        for recorder in list(self._live):
            parts = recorder.parts()
            recorder.unchanged_ticks += 1
            if parts != recorder.saved_parts or recorder.unchanged_ticks >= TOUCH_EVERY:
                due.append((recorder, parts))
        if not due:
            return
        self._store.checkpoint_many([(r.target.message_id, *r.snapshot()) for r, _ in due])
        for recorder, parts in due:
            recorder.saved_parts, recorder.unchanged_ticks = parts, 0


def status_for(end: StreamEnd) -> Status:
    """A stored answer's status from how its stream ended."""
    if end.finish_reason in (FinishReason.STOP, FinishReason.LENGTH):
        return Status.COMPLETE
    if end.finish_reason == FinishReason.ERROR:
        return Status.ERROR
    # Cancelled: by the user (Stop, or closing the page), or by the server going away.
    if end.cause in (Cause.SHUTDOWN, Cause.WRITE_TIMEOUT, Cause.UNREAD):
        return Status.INTERRUPTED
    return Status.STOPPED
