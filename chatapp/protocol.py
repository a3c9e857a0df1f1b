"""The wire contract of docs/api.md, in code: every name a client sees, defined once.

- `Event`: the SSE event names; `FinishReason`: the `finish_reason` of `done`.
- `ErrorCode`: the `code` of a JSON error body; `StreamErrorCode`: the `code` of an
  `error` event. Codes are public: add new ones, never rename.
- `EventWriter`: one stream's events as `text/event-stream` frames, numbered
  `<stream_id>:<sequence>` from 1. The relay writes every event through it.

The model side (`llm/`) knows nothing of this: it reports `StopReason` and
`FailureKind`, which `finish_reason_for` and `stream_error_code` translate here.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

import orjson

from .llm.base import FailureKind, StopReason, Usage
from .sse import event_frame


class Event(StrEnum):
    START = "start"
    REASONING = "reasoning"
    TOKEN = "token"
    USAGE = "usage"
    ERROR = "error"
    DONE = "done"


class FinishReason(StrEnum):
    STOP = "stop"  # the model finished (any upstream reason other than length)
    LENGTH = "length"  # it hit max_tokens
    CANCELLED = "cancelled"  # stopped: the stop endpoint, a closed connection, shutdown
    ERROR = "error"  # an `error` event came just before


class ErrorCode(StrEnum):
    """Codes of the JSON error body, `{"error": {"code": ..., "message": ...}}`."""

    INVALID_JSON = "invalid_json"
    INVALID_BODY = "invalid_body"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BODY_TOO_LARGE = "body_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    MISSING_MESSAGES = "missing_messages"
    INVALID_MESSAGE = "invalid_message"
    INVALID_ROLE = "invalid_role"
    INVALID_CONTENT = "invalid_content"
    LAST_MESSAGE_NOT_USER = "last_message_not_user"
    EMPTY_MESSAGE = "empty_message"
    TOO_MANY_MESSAGES = "too_many_messages"
    MESSAGE_TOO_LONG = "message_too_long"
    CONVERSATION_TOO_LONG = "conversation_too_long"
    INVALID_MAX_TOKENS = "invalid_max_tokens"
    INVALID_TEMPERATURE = "invalid_temperature"
    INVALID_MODEL = "invalid_model"
    UNKNOWN_MODEL = "unknown_model"
    STREAM_NOT_FOUND = "stream_not_found"
    INVALID_EVENT_ID = "invalid_event_id"
    SHARED_STATE_UNAVAILABLE = "shared_state_unavailable"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INTERNAL_ERROR = "internal_error"
    SHUTTING_DOWN = "shutting_down"
    SERVER_BUSY = "server_busy"
    TOO_MANY_STREAMS = "too_many_streams"
    CROSS_SITE = "cross_site_request"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    # Stored conversations
    CONVERSATION_NOT_FOUND = "conversation_not_found"
    MESSAGE_NOT_FOUND = "message_not_found"
    INVALID_PARENT = "invalid_parent"
    NOT_AN_ANSWER = "not_an_answer"
    INVALID_TITLE = "invalid_title"
    INVALID_SYSTEM_PROMPT = "invalid_system_prompt"
    INVALID_LIMIT = "invalid_limit"
    INVALID_CURSOR = "invalid_cursor"


class StreamErrorCode(StrEnum):
    """Codes of the `error` event: how the model side failed after the stream began."""

    UPSTREAM_AUTH = "upstream_auth"
    UPSTREAM_PERMISSION = "upstream_permission"
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    UPSTREAM_BAD_REQUEST = "upstream_bad_request"
    UPSTREAM_NOT_FOUND = "upstream_not_found"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNREACHABLE = "upstream_unreachable"
    UPSTREAM_DISCONNECTED = "upstream_disconnected"
    UPSTREAM_SERVER_ERROR = "upstream_server_error"
    UPSTREAM_MALFORMED = "upstream_malformed"
    UPSTREAM_INCOMPLETE = "upstream_incomplete"
    # The same code as the JSON body's: a bug in chatapp, wherever it shows.
    INTERNAL_ERROR = ErrorCode.INTERNAL_ERROR.value


_TOKEN = Event.TOKEN.value

_STREAM_ERROR_CODES: dict[FailureKind, StreamErrorCode] = {
    FailureKind.AUTH: StreamErrorCode.UPSTREAM_AUTH,
    FailureKind.PERMISSION: StreamErrorCode.UPSTREAM_PERMISSION,
    FailureKind.RATE_LIMITED: StreamErrorCode.UPSTREAM_RATE_LIMITED,
    FailureKind.BAD_REQUEST: StreamErrorCode.UPSTREAM_BAD_REQUEST,
    FailureKind.NOT_FOUND: StreamErrorCode.UPSTREAM_NOT_FOUND,
    FailureKind.TIMEOUT: StreamErrorCode.UPSTREAM_TIMEOUT,
    FailureKind.UNREACHABLE: StreamErrorCode.UPSTREAM_UNREACHABLE,
    FailureKind.DISCONNECTED: StreamErrorCode.UPSTREAM_DISCONNECTED,
    FailureKind.SERVER_ERROR: StreamErrorCode.UPSTREAM_SERVER_ERROR,
    FailureKind.MALFORMED: StreamErrorCode.UPSTREAM_MALFORMED,
    FailureKind.INCOMPLETE: StreamErrorCode.UPSTREAM_INCOMPLETE,
}

_FINISH_REASONS: dict[StopReason, FinishReason] = {
    StopReason.STOP: FinishReason.STOP,
    StopReason.LENGTH: FinishReason.LENGTH,
}


def stream_error_code(kind: FailureKind) -> StreamErrorCode:
    """The `error` event's code for a way the model side failed."""
    return _STREAM_ERROR_CODES[kind]


def finish_reason_for(reason: StopReason) -> FinishReason:
    """The `done` event's finish reason for why the model ended its answer."""
    return _FINISH_REASONS[reason]


def new_stream_id() -> str:
    """An unguessable id (128 random bits, 22 characters), safe in URLs and in an SSE `id:` line."""
    return secrets.token_urlsafe(16)


class EventWriter:
    """One stream's events as frames, each with the id `<stream_id>:<sequence>`, counting from 1.

    Every data field is one line of JSON (orjson escapes CR and LF), so a token holding
    a newline arrives intact. The `token` method is the per-token path: keep it lean.
    """

    __slots__ = ("sequence", "stream_id")

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.sequence = 0  # of the last event written

    def event(self, name: Event, payload: dict[str, Any]) -> bytes:
        return self._frame(name.value, payload)

    def _frame(self, name: str, payload: dict[str, Any]) -> bytes:
        self.sequence += 1
        return event_frame(orjson.dumps(payload), event=name, event_id=f"{self.stream_id}:{self.sequence}")

    def start(self, model: str, **extra: Any) -> bytes:
        return self.event(Event.START, {"stream_id": self.stream_id, "model": model, **extra})

    def token(self, text: str) -> bytes:
        return self._frame(_TOKEN, {"text": text})  # the name as a plain str: enum access costs here

    def reasoning(self, text: str) -> bytes:
        return self.event(Event.REASONING, {"text": text})

    def usage(self, usage: Usage) -> bytes:
        return self.event(
            Event.USAGE,
            {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        )

    def error(self, code: StreamErrorCode, message: str) -> bytes:
        return self.event(Event.ERROR, {"code": code, "message": message})

    def done(self, reason: FinishReason, served_model: str | None = None) -> bytes:
        """The last event. `served_model`: the model the upstream says answered, sent only when it
        is not the one `start` named (llama.cpp's server answers any name with its own)."""
        payload: dict[str, Any] = {"finish_reason": reason}
        if served_model is not None:
            payload["model"] = served_model
        return self.event(Event.DONE, payload)
