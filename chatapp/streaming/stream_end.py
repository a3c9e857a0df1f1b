"""How a relay's stream ended, told to whoever keeps the answer (`StreamObserver`) and to the log.

`StreamStats` is what the relay counts as it goes (time to first token, tokens); `StreamEnd` what
it reports once, before `done` goes out; `log_stream_end` the one log line every stream ends with.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from ..llm.base import BackendEvent
from ..protocol import FinishReason, StreamErrorCode
from .registry import Cause

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """How a stream ended, for an observer that keeps the answer."""

    finish_reason: FinishReason
    cause: Cause | None  # why it was cancelled, when it was
    error: tuple[StreamErrorCode, str] | None
    served_model: str | None
    ttft_ms: int | None
    duration_ms: int


@dataclass
class StreamStats:
    """What the one log line at the end of a stream reports."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    tokens: int = 0
    finish_reason: FinishReason = FinishReason.CANCELLED

    def end(
        self, cancel_cause: Cause | None, error: tuple[StreamErrorCode, str] | None, served_model: str | None
    ) -> StreamEnd:
        """What the observer is told, now that `finish_reason` is set."""
        reason = self.finish_reason
        return StreamEnd(
            finish_reason=reason,
            cause=cancel_cause if reason == FinishReason.CANCELLED else None,
            error=error,
            served_model=served_model,
            ttft_ms=None
            if self.first_token_at is None
            else round((self.first_token_at - self.started) * 1000),
            duration_ms=round((time.monotonic() - self.started) * 1000),
        )


class StreamObserver(Protocol):
    """Sees what a stream relays (a stored conversation's answer is written so). Called in the
    relay's greenlet: `began` when the response body starts, `seen` once per read (never per
    token), `ended` once, before `done` is written, so that a client that got `done` finds the
    answer stored."""

    def began(self) -> None: ...

    def seen(self, events: list[BackendEvent]) -> None: ...

    def ended(self, end: StreamEnd) -> None: ...


def log_stream_end(
    stream_id: str, model: str, s: StreamStats, cancel_cause: Cause | None, client: str | None
) -> None:
    ttft = f"{(s.first_token_at - s.started) * 1000:.0f}" if s.first_token_at else "-"
    log.info(
        "stream end id=%s model=%s finish_reason=%s cause=%s tokens=%d ttft_ms=%s duration_ms=%.0f client=%s",
        stream_id,
        model,
        s.finish_reason,
        cancel_cause if s.finish_reason == FinishReason.CANCELLED else "-",
        s.tokens,
        ttft,
        (time.monotonic() - s.started) * 1000,
        client or "-",
    )
