"""Turn a request body into a `ChatRequest`, or raise the `ApiError` that says what is wrong.

Pure functions over bytes and settings: nothing here touches Flask's request
or the network, so a rejected request never reaches the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .config import Settings
from .errors import ApiError, Code

ROLES = ("system", "user", "assistant")
MAX_MODEL_NAME_CHARS = 200
MAX_TEMPERATURE = 2.0


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


def require_json_content_type(mimetype: str) -> None:
    if mimetype != "application/json":
        raise ApiError(
            415,
            Code.UNSUPPORTED_MEDIA_TYPE,
            f"Send the body as Content-Type: application/json (got {mimetype or 'none'!r}).",
        )


def parse_chat_request(body: bytes, settings: Settings) -> ChatRequest:
    """Validate a POST /api/chat body against the contract and the configured limits."""
    if len(body) > settings.max_body_bytes:
        raise ApiError(
            413,
            Code.BODY_TOO_LARGE,
            f"The request body is over the limit of {settings.max_body_bytes} bytes.",
        )
    data = _load_object(body)
    messages = _messages(data.get("messages"), settings)
    return ChatRequest(
        messages=messages,
        model=_model(data.get("model"), settings),
        max_tokens=_max_tokens(data.get("max_tokens"), settings),
        temperature=_temperature(data.get("temperature")),
    )


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(Code.INVALID_JSON, f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise _bad(Code.INVALID_BODY, 'The body must be a JSON object with a "messages" list.')
    return data


def _messages(raw: object, settings: Settings) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise _bad(Code.MISSING_MESSAGES, '"messages" must be a non-empty list of messages.')
    if len(raw) > settings.max_messages:
        raise _bad(
            Code.TOO_MANY_MESSAGES,
            f"A conversation may hold at most {settings.max_messages} messages; this one has {len(raw)}.",
        )
    messages = tuple(_message(i, item, settings) for i, item in enumerate(raw))
    total = sum(len(m.content) for m in messages)
    if total > settings.max_conversation_chars:
        raise _bad(
            Code.CONVERSATION_TOO_LONG,
            f"The conversation is {total} characters long; the limit is "
            f"{settings.max_conversation_chars}. Start a new chat.",
        )
    last = messages[-1]
    if last.role != "user":
        raise _bad(Code.LAST_MESSAGE_NOT_USER, "The last message must be from the user.")
    if not last.content.strip():
        raise _bad(Code.EMPTY_MESSAGE, "The last message is empty: type something to send.")
    return messages


def _message(index: int, item: object, settings: Settings) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise _bad(Code.INVALID_MESSAGE, f'{where} must be an object with "role" and "content".')
    role = item.get("role")
    if role not in ROLES:
        raise _bad(Code.INVALID_ROLE, f"{where}.role must be one of {', '.join(ROLES)}; got {role!r}.")
    content = item.get("content")
    if not isinstance(content, str):
        raise _bad(Code.INVALID_CONTENT, f"{where}.content must be a string.")
    if len(content) > settings.max_message_chars:
        raise _bad(
            Code.MESSAGE_TOO_LONG,
            f"{where} is {len(content)} characters long; the limit is {settings.max_message_chars}.",
        )
    return Message(role=role, content=content)


def _model(raw: object, settings: Settings) -> str:
    if raw is None:
        return settings.model
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_MODEL_NAME_CHARS:
        raise _bad(Code.INVALID_MODEL, '"model" must be a non-empty string naming a model.')
    if settings.models and raw not in settings.models:
        raise _bad(
            Code.UNKNOWN_MODEL,
            f"Unknown model {raw!r}; choose one of: {', '.join(settings.models)}.",
        )
    return raw


def _max_tokens(raw: object, settings: Settings) -> int | None:
    if raw is None:
        return None
    # bool is an int subclass in Python, but `true` is not a token count.
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= settings.max_tokens_cap:
        raise _bad(
            Code.INVALID_MAX_TOKENS,
            f'"max_tokens" must be a whole number from 1 to {settings.max_tokens_cap}.',
        )
    return raw


def _temperature(raw: object) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= MAX_TEMPERATURE:
        raise _bad(Code.INVALID_TEMPERATURE, f'"temperature" must be a number from 0 to {MAX_TEMPERATURE:g}.')
    return float(raw)
