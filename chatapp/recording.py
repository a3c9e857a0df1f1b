"""Keeping a stored conversation's answer while it streams: `AnswerRecorder`, a relay observer.

The relay hands it each read's events (a list append, never a database call per
token). A timer greenlet saves the text so far at most every `checkpoint_s`
seconds, when it changed, and touches the row every few intervals when it did
not, which tells other workers the answer is alive; a worker killed with SIGKILL
therefore loses at most one interval, and the answer is later found as an
orphan and marked `interrupted` (store.mark_orphans_interrupted). The end is
written before the relay sends `done`, so a client that got `done` reads the
final answer back.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

from .llm.base import BackendEvent, ReasoningDelta, TextDelta, Usage
from .protocol import FinishReason
from .relay import StreamEnd
from .store import Store
from .store.records import Status
from .store.records import Usage as StoredUsage
from .streams import Cause

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
    def __init__(self, store: Store, target: AnswerTarget, checkpoint_s: float) -> None:
        self._store = store
        self._target = target
        self._checkpoint_s = checkpoint_s
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._usage: Usage | None = None
        self._saved = (0, 0)  # lengths of text and reasoning at the last checkpoint
        self._ended = threading.Event()
        self._timer: threading.Thread | None = None

    # -- StreamObserver ----------------------------------------------------------------

    def seen(self, events: list[BackendEvent]) -> None:
        for event in events:
            if type(event) is TextDelta:
                self._text.append(event.text)
            elif type(event) is ReasoningDelta:
                self._reasoning.append(event.text)
            elif type(event) is Usage:
                self._usage = event
        if self._timer is None:
            # Started with the first events, in the worker (a greenlet under gevent).
            self._timer = threading.Thread(target=self._checkpoints, name="checkpoints", daemon=True)
            self._timer.start()

    def ended(self, end: StreamEnd) -> None:
        self._ended.set()
        text, reasoning = "".join(self._text), "".join(self._reasoning)
        code, message = end.error if end.error is not None else (None, None)
        self._store.finish_message(
            self._target.message_id,
            status=status_for(end),
            content=text,
            reasoning=reasoning or None,
            finish_reason=end.finish_reason,
            error_code=code,
            error_message=message,
            usage=self._final_usage(text, reasoning),
            model=end.served_model,
            ttft_ms=end.ttft_ms,
            duration_ms=end.duration_ms,
        )

    # -- checkpoints -------------------------------------------------------------------

    def _checkpoints(self) -> None:
        ticks = 0
        while not self._ended.wait(self._checkpoint_s):
            ticks += 1
            lengths = (len(self._text), len(self._reasoning))
            if lengths == self._saved and ticks % TOUCH_EVERY:
                continue
            try:
                self._store.checkpoint(
                    self._target.message_id, "".join(self._text), "".join(self._reasoning) or None
                )
                self._saved = lengths
            except Exception:  # a missed checkpoint costs at most one interval; the end is still written
                log.exception("answer %s: checkpoint failed", self._target.message_id)

    def _final_usage(self, text: str, reasoning: str) -> StoredUsage:
        if self._usage is not None:
            u = self._usage
            return StoredUsage(u.prompt_tokens, u.completion_tokens, u.total_tokens)
        prompt = math.ceil(self._target.prompt_chars / CHARS_PER_TOKEN)
        completion = math.ceil((len(text) + len(reasoning)) / CHARS_PER_TOKEN)
        return StoredUsage(prompt, completion, prompt + completion, estimated=True)


def status_for(end: StreamEnd) -> Status:
    """A stored answer's status from how its stream ended."""
    if end.finish_reason in (FinishReason.STOP, FinishReason.LENGTH):
        return Status.COMPLETE
    if end.finish_reason == FinishReason.ERROR:
        return Status.ERROR
    # Cancelled: by the user (Stop, or closing the page), or by the server going away.
    if end.cause in (Cause.SHUTDOWN, Cause.WRITE_TIMEOUT):
        return Status.INTERRUPTED
    return Status.STOPPED
