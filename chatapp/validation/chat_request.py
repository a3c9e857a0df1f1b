"""`POST /api/chat`: a request body -> `ChatRequest`, or the `ApiError` that says what is wrong."""

from __future__ import annotations

from ..config import Settings
from ..llm.base import ChatRequest, Message
from ..protocol import ErrorCode
from .fields import bad, check_size, load_object, max_tokens, model, temperature

ROLES = ("system", "user", "assistant")


def parse_chat_request(body: bytes, settings: Settings) -> ChatRequest:
    """Validate a POST /api/chat body against the contract and the configured limits."""
    check_size(body, settings)
    data = load_object(body, 'The body must be a JSON object with a "messages" list.')
    messages = _messages(data.get("messages"), settings)
    return ChatRequest(
        messages=messages,
        model=model(data.get("model"), settings),
        max_tokens=max_tokens(data.get("max_tokens"), settings),
        temperature=temperature(data.get("temperature")),
    )


def _messages(raw: object, settings: Settings) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise bad(ErrorCode.MISSING_MESSAGES, '"messages" must be a non-empty list of messages.')
    if len(raw) > settings.max_messages:
        raise bad(
            ErrorCode.TOO_MANY_MESSAGES,
            f"A conversation may hold at most {settings.max_messages} messages; this one has {len(raw)}.",
        )
    messages = tuple(_message(i, item, settings) for i, item in enumerate(raw))
    total = sum(len(m.content) for m in messages)
    if total > settings.max_conversation_chars:
        raise bad(
            ErrorCode.CONVERSATION_TOO_LONG,
            f"The conversation is {total} characters long; the limit is "
            f"{settings.max_conversation_chars}. Start a new chat.",
        )
    last = messages[-1]
    if last.role != "user":
        raise bad(ErrorCode.LAST_MESSAGE_NOT_USER, "The last message must be from the user.")
    if not last.content.strip():
        raise bad(ErrorCode.EMPTY_MESSAGE, "The last message is empty: type something to send.")
    return messages


def _message(index: int, item: object, settings: Settings) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise bad(ErrorCode.INVALID_MESSAGE, f'{where} must be an object with "role" and "content".')
    role = item.get("role")
    if role not in ROLES:
        raise bad(ErrorCode.INVALID_ROLE, f"{where}.role must be one of {', '.join(ROLES)}; got {role!r}.")
    content = item.get("content")
    if not isinstance(content, str):
        raise bad(ErrorCode.INVALID_CONTENT, f"{where}.content must be a string.")
    if len(content) > settings.max_message_chars:
        raise bad(
            ErrorCode.MESSAGE_TOO_LONG,
            f"{where} is {len(content)} characters long; the limit is {settings.max_message_chars}.",
        )
    return Message(role=role, content=content)
