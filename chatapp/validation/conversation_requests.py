"""The stored conversations' bodies and query strings -> typed requests, or an `ApiError`.

Absent and `null` differ here: in a PATCH, an absent field is left as it is and
`null` clears it; in a new message, an absent `parent_id` follows the branch on
display and `null` starts from the top (an edit of the first message).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import Settings
from ..protocol import ErrorCode
from ..store import DEFAULT_PAGE
from ..store.conversations import UNSET, Unset
from .fields import bad, check_size, load_object, max_tokens, model, temperature, user_text

MAX_TITLE_CHARS = 200
MAX_PAGE = 100
SETTINGS_FIELDS = ("title", "model", "system_prompt", "temperature", "max_tokens")


@dataclass(frozen=True, slots=True)
class ConversationChanges:
    """The fields a create or PATCH gives (absent ones are not in `fields`), and `show`: the
    message whose branch to put on display."""

    fields: dict[str, Any]
    show: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerOptions:
    """Per-request choices for one answer; None: the conversation's own."""

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    content: str
    parent_id: str | Unset | None
    options: AnswerOptions


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    before: datetime | None
    before_id: str | None = None  # the last one's id too: exact when two share an updated_at


def parse_conversation_changes(body: bytes, settings: Settings, *, allow_show: bool) -> ConversationChanges:
    """A `POST /api/conversations` (allow_show=False) or `PATCH /api/conversations/<id>` body."""
    data = _object(body or b"{}", settings)
    fields: dict[str, Any] = {}
    for name in SETTINGS_FIELDS:
        if name in data:
            fields[name] = _setting(name, data[name], settings)
    show = data.get("show") if allow_show else None
    if show is not None and not _is_id(show):
        raise bad(ErrorCode.MESSAGE_NOT_FOUND, '"show" must be the id of a message of this conversation.')
    return ConversationChanges(fields, show)


def parse_new_message(body: bytes, settings: Settings) -> NewMessage:
    """A `POST /api/conversations/<id>/messages` body."""
    data = _object(body, settings)
    parent: str | Unset | None = UNSET
    if "parent_id" in data:
        parent = data["parent_id"]
        if parent is not None and not _is_id(parent):
            raise bad(ErrorCode.INVALID_PARENT, '"parent_id" must be the id of a message, or null.')
    return NewMessage(user_text(data.get("content"), settings), parent, _options(data, settings))


def parse_answer_options(body: bytes, settings: Settings) -> AnswerOptions:
    """A regenerate body: optional, and every field in it optional."""
    return _options(_object(body or b"{}", settings), settings)


def parse_page(args: dict[str, str]) -> Page:
    """`?limit=&before=` of `GET /api/conversations`."""
    raw_limit = args.get("limit", str(DEFAULT_PAGE))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise bad(ErrorCode.INVALID_LIMIT, f'"limit" must be a whole number from 1 to {MAX_PAGE}.')
    before = None
    if args.get("before"):
        try:
            before = datetime.fromisoformat(args["before"])
        except ValueError:
            raise bad(
                ErrorCode.INVALID_CURSOR, '"before" must be an "updated_at" time from this API.'
            ) from None
        if before.tzinfo is None:
            raise bad(
                ErrorCode.INVALID_CURSOR, '"before" must be a time with its zone, as the API writes it.'
            )
    before_id = args.get("before_id") or None
    if before_id is not None and (before is None or not _is_id(before_id)):
        raise bad(
            ErrorCode.INVALID_CURSOR, '"before_id" goes with "before": the id of the last one you have.'
        )
    return Page(int(raw_limit), before, before_id)


def _object(body: bytes, settings: Settings) -> dict[str, Any]:
    check_size(body, settings)
    return load_object(body, "The body must be a JSON object.")


def _options(data: dict[str, Any], settings: Settings) -> AnswerOptions:
    return AnswerOptions(
        model=None if data.get("model") is None else model(data["model"], settings),
        temperature=temperature(data.get("temperature")),
        max_tokens=max_tokens(data.get("max_tokens"), settings),
    )


def _setting(name: str, raw: object, settings: Settings) -> Any:
    if name == "title":
        if raw is not None and (not isinstance(raw, str) or not 1 <= len(raw.strip()) <= MAX_TITLE_CHARS):
            raise bad(ErrorCode.INVALID_TITLE, f'"title" must be text of 1 to {MAX_TITLE_CHARS} characters.')
        return raw.strip() if isinstance(raw, str) else None
    if name == "system_prompt":
        if raw is not None and (not isinstance(raw, str) or len(raw) > settings.max_message_chars):
            raise bad(
                ErrorCode.INVALID_SYSTEM_PROMPT,
                f'"system_prompt" must be text of at most {settings.max_message_chars} characters, or null.',
            )
        return raw or None
    if name == "model":
        return None if raw is None else model(raw, settings)
    if name == "temperature":
        return temperature(raw)
    return max_tokens(raw, settings)


def _is_id(raw: object) -> bool:
    return isinstance(raw, str) and 0 < len(raw) <= 64
