"""What every model backend speaks: the events it yields and the errors it raises.

A backend turns a `ChatRequest` into a `ModelStream` of small frozen events
that knows nothing of HTTP or SSE. Creating the stream does no I/O; `open()`
sends the request and returns once the model has answered; `read(timeout)`
returns the events that arrived within `timeout` seconds (all of them at once,
so the relay writes them in one go), `[]` when none did; `Finish` is always
the last event of an answer. `read(None)` waits for events however long it
takes: under gevent the relay reads so and is woken by the stream registry's
sweeper (a `TimeoutError` raised in the read) when it has a heartbeat to send.
`close()` may be called from another greenlet (or thread) at any moment and
must end the upstream request at once; a `read` it interrupts returns `[]`.

Reading with a timeout, instead of iterating, is what lets the response's own
greenlet read the model and still send heartbeats while the model is silent:
no second greenlet and no queue between them on the per-token path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..validation import ChatRequest


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Text of the model's reasoning, streamed before (or beside) the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # FinishReason.STOP or FinishReason.LENGTH


BackendEvent = TextDelta | ReasoningDelta | Usage | Finish


class FinishReason:
    """The finish reasons of the `done` event (docs/api.md)."""

    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    ERROR = "error"


class UpstreamCode:
    """Stable codes of the `error` event, one per way the model side can fail."""

    AUTH = "upstream_auth"
    PERMISSION = "upstream_permission"
    RATE_LIMITED = "upstream_rate_limited"
    BAD_REQUEST = "upstream_bad_request"
    NOT_FOUND = "upstream_not_found"
    TIMEOUT = "upstream_timeout"
    UNREACHABLE = "upstream_unreachable"
    DISCONNECTED = "upstream_disconnected"
    SERVER_ERROR = "upstream_server_error"
    MALFORMED = "upstream_malformed"
    INCOMPLETE = "upstream_incomplete"
    INTERNAL = "internal_error"


class UpstreamError(Exception):
    """The model side failed; `message` is written for the person using the chat."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ModelStream(Protocol):
    model: str

    def open(self) -> None: ...

    def read(self, timeout: float | None) -> list[BackendEvent]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    def stream(self, request: ChatRequest) -> ModelStream: ...
