"""Keeping a stored conversation's answer while it streams: `AnswerRecorder` and `CheckpointWriter`.

The relay hands the recorder each read's events (a list append, never a database
call per token). One `CheckpointWriter` per process saves the text so far of
every answer that changed, all in one unit of work, every `checkpoint_s`
seconds, and touches the unchanged ones every few intervals, which tells other
workers those answers are alive. A worker killed with SIGKILL therefore loses at
most one interval, and its answers are found as orphans and marked `interrupted`
by the same loop, every few intervals, in whichever worker looks first
(store.mark_orphans_interrupted), and once at start-up. An answer's end is written by
its own stream before the relay sends `done`, so a client that got `done` reads
the final answer back.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ..llm.base import BackendEvent, ReasoningDelta, TextDelta, Usage
from ..protocol import FinishReason
from ..store import Outcome, Store
from ..store.records import Status
from ..store.records import Usage as StoredUsage
from .registry import Cause
from .stream_end import StreamEnd

log = logging.getLogger(__name__)

# An unchanged answer (a silent model) is touched every this many checkpoints.
TOUCH_EVERY = 5
# An answer whose last checkpoint is this many intervals old, and whose stream runs nowhere, is an orphan.
ORPHAN_AFTER_CHECKPOINTS = 15
# Orphans are looked for every this many checkpoints (an indexed query on `streaming` answers).
SWEEP_ORPHANS_EVERY = 3
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
    """Saves every live answer of this process that changed, in one unit of work per interval, and
    marks the answers that dead workers left `streaming` as `interrupted`."""

    def __init__(self, store: Store, interval_s: float, is_live: Callable[[str], bool]) -> None:
        self._store = store
        self._interval_s = interval_s
        self._is_live = is_live  # whether a stream runs in this process
        self._live: set[AnswerRecorder] = set()
        self._thread: threading.Thread | None = None

    @property
    def orphan_age(self) -> timedelta:
        """How old an answer's last checkpoint must be, with its stream running nowhere, for the
        answer to count as orphaned by a worker that died."""
        return timedelta(seconds=self._interval_s * ORPHAN_AFTER_CHECKPOINTS)

    def start(self) -> None:
        """Run the loop: under gunicorn, a greenlet of the worker (start-up runs after patching)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
            self._thread.start()

    def add(self, recorder: AnswerRecorder) -> None:
        self._live.add(recorder)

    def discard(self, recorder: AnswerRecorder) -> None:
        self._live.discard(recorder)

    def _run(self) -> None:
        event = threading.Event()  # never set: a sleep that gevent and threads both honour
        ticks = 0
        while True:
            event.wait(self._interval_s)
            ticks += 1
            try:
                self.write_due()
                if ticks % SWEEP_ORPHANS_EVERY == 0:
                    self.mark_orphans()
            except RuntimeError:
                # The store's thread pool refuses work: it was closed, or the interpreter is exiting
                # (an app made outside gunicorn, in a process that ends).
                return
            except Exception:  # a missed checkpoint costs one interval; the next one retries
                log.exception("checkpoint failed")

    def mark_orphans(self) -> list[str]:
        """Mark `interrupted` the answers whose worker went away mid-answer; their ids."""
        marked = self._store.mark_orphans_interrupted(self.orphan_age, is_live=self._is_live)
        if marked:
            log.info("marked %d answers interrupted: their worker went away mid-answer", len(marked))
        return marked

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
