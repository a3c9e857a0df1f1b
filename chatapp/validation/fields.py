"""The fields that several bodies share, each checked once: the body itself, model, sampling, text.

Pure functions over values and settings: nothing here touches Flask's request or
the network, so a rejected request never reaches the model or the store.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..config import Settings
from ..errors import ApiError
from ..protocol import ErrorCode

MAX_MODEL_NAME_CHARS = 200
MAX_TEMPERATURE = 2.0


def require_json_content_type(mimetype: str) -> None:
    if mimetype != "application/json":
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"Send the body as Content-Type: application/json (got {mimetype or 'none'!r}).",
        )


def bad(code: ErrorCode, message: str) -> ApiError:
    return ApiError(400, code, message)


def check_size(body: bytes, settings: Settings) -> None:
    if len(body) > settings.max_body_bytes:
        raise ApiError(
            413,
            ErrorCode.BODY_TOO_LARGE,
            f"The request body is over the limit of {settings.max_body_bytes} bytes.",
        )


def load_object(body: bytes, shape: str) -> dict[str, Any]:
    """The body as a JSON object; `shape` says what it should be when it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad(ErrorCode.INVALID_JSON, f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise bad(ErrorCode.INVALID_BODY, shape)
    return data


def user_text(raw: object, settings: Settings, where: str = '"content"') -> str:
    """A user message's text: a non-empty string within CHATAPP_MAX_MESSAGE_CHARS."""
    if not isinstance(raw, str):
        raise bad(ErrorCode.INVALID_CONTENT, f"{where} must be a string.")
    if len(raw) > settings.max_message_chars:
        raise bad(
            ErrorCode.MESSAGE_TOO_LONG,
            f"{where} is {len(raw)} characters long; the limit is {settings.max_message_chars}.",
        )
    if not raw.strip():
        raise bad(ErrorCode.EMPTY_MESSAGE, "The message is empty: type something to send.")
    return raw


def model(raw: object, settings: Settings) -> str:
    if raw is None:
        return settings.model
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_MODEL_NAME_CHARS:
        raise bad(ErrorCode.INVALID_MODEL, '"model" must be a non-empty string naming a model.')
    if settings.models and raw not in settings.models:
        raise bad(
            ErrorCode.UNKNOWN_MODEL,
            f"Unknown model {raw!r}; choose one of: {', '.join(settings.models)}.",
        )
    return raw


def max_tokens(raw: object, settings: Settings) -> int | None:
    if raw is None:
        return None
    # bool is an int subclass in Python, but `true` is not a token count.
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= settings.max_tokens_cap:
        raise bad(
            ErrorCode.INVALID_MAX_TOKENS,
            f'"max_tokens" must be a whole number from 1 to {settings.max_tokens_cap}.',
        )
    return raw


def temperature(raw: object) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= MAX_TEMPERATURE:
        raise bad(
            ErrorCode.INVALID_TEMPERATURE, f'"temperature" must be a number from 0 to {MAX_TEMPERATURE:g}.'
        )
    return float(raw)
