"""What every model backend speaks: the request it takes, the events it yields, the errors it raises.

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

This is the model side's own vocabulary: why a model ended (`StopReason`) and
how the model side failed (`FailureKind`). The wire's finish reasons and error
codes are the web side's, which maps these onto them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[Message, ...]
    model: str
    max_tokens: int | None = None
    temperature: float | None = None


class StopReason(StrEnum):
    """Why the model itself ended an answer."""

    STOP = "stop"
    LENGTH = "length"


class FailureKind(StrEnum):
    """How the model side can fail; each becomes one stable error code on the wire."""

    AUTH = "auth"
    PERMISSION = "permission"
    RATE_LIMITED = "rate_limited"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    DISCONNECTED = "disconnected"
    SERVER_ERROR = "server_error"
    MALFORMED = "malformed"
    INCOMPLETE = "incomplete"


class UpstreamError(Exception):
    """The model side failed; `message` is written for the person using the chat."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


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
    reason: StopReason


BackendEvent = TextDelta | ReasoningDelta | Usage | Finish


class ModelStream(Protocol):
    model: str
    """The model that was asked for."""

    @property
    def served_model(self) -> str | None:
        """The model the upstream says answered (a server may answer any name with its own);
        None until it has said so."""
        ...

    def open(self) -> None: ...

    def read(self, timeout: float | None) -> list[BackendEvent]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    def stream(self, request: ChatRequest) -> ModelStream: ...

    def list_models(self) -> list[str]:
        """The names of the models the server offers (it may raise when it cannot say)."""
        ...
