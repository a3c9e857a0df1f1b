"""The stored conversations' API (docs/api.md, "Conversations"): JSON in and out, and two
endpoints that stream an answer exactly as `POST /api/chat` does while the answer is kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, request

from ..errors import ApiError
from ..llm.base import ChatRequest
from ..llm.base import Message as ChatMessage
from ..protocol import ErrorCode, new_stream_id
from ..rate_limits import streams_rate_limit
from ..security import reject_cross_site
from ..state import AppState, app_state
from ..store import Conversation, ConversationTooLong, InvalidParent, Message, Store, Turn
from ..store.turns import NOT_AN_ANSWER, NOT_IN_CONVERSATION
from ..stream_responses import admit, answer_response, relay_for
from ..streaming.recording import AnswerRecorder, AnswerTarget
from ..streaming.registry import Release
from ..validation import require_json_content_type
from ..validation.conversation_requests import (
    AnswerOptions,
    parse_answer_options,
    parse_conversation_changes,
    parse_new_message,
    parse_page,
)

bp = Blueprint("conversations", __name__, url_prefix="/api")


@bp.before_request
def _only_from_this_site() -> None:
    reject_cross_site(request)


def _state() -> AppState:
    return app_state(current_app)


def _store() -> Store:
    return _state().store


@bp.get("/models")
def list_models() -> dict[str, Any]:
    state = _state()
    return {"models": state.models.names(), "default": state.settings.model}


@bp.get("/conversations")
def list_conversations() -> dict[str, Any]:
    page = parse_page(request.args.to_dict())
    found = _store().list_conversations(before=page.before, before_id=page.before_id, limit=page.limit)
    more = len(found) == page.limit
    return {
        "conversations": [conversation_summary(c) for c in found],
        "next_before": _time(found[-1].updated_at) if more else None,
        "next_before_id": found[-1].id if more else None,
    }


@bp.post("/conversations")
def create_conversation() -> tuple[dict[str, Any], int]:
    require_json_content_type(request.mimetype)
    changes = parse_conversation_changes(request.get_data(cache=False), _state().settings, allow_show=False)
    conversation = _store().create_conversation(**changes.fields)
    return conversation_json(conversation, []), 201


@bp.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> dict[str, Any]:
    return read_conversation(conversation_id)


@bp.patch("/conversations/<conversation_id>")
def update_conversation(conversation_id: str) -> dict[str, Any]:
    require_json_content_type(request.mimetype)
    changes = parse_conversation_changes(request.get_data(cache=False), _state().settings, allow_show=True)
    store = _store()
    store.get_conversation(conversation_id)  # 404 before anything changes
    if changes.show is not None:
        store.get_message(conversation_id, changes.show)
    if changes.fields:
        store.update_conversation(conversation_id, **changes.fields)
    if changes.show is not None:
        store.set_current_leaf(conversation_id, changes.show)
    return read_conversation(conversation_id)


@bp.delete("/conversations/<conversation_id>")
def delete_conversation(conversation_id: str) -> tuple[str, int]:
    _store().delete_conversation(conversation_id)
    return "", 204


@bp.post("/conversations/<conversation_id>/messages")
@streams_rate_limit
def send_message(conversation_id: str) -> Response:
    require_json_content_type(request.mimetype)
    release = admit()
    try:
        state = _state()
        new = parse_new_message(request.get_data(cache=False), state.settings)
        stream_id = new_stream_id()
        try:
            turn = state.store.ask(
                conversation_id,
                new.content,
                new.parent_id,
                model=new.options.model,
                default_model=state.settings.model,
                stream_id=stream_id,
                max_chars=state.settings.max_conversation_chars,
            )
        except InvalidParent as error:
            raise ApiError(400, ErrorCode.INVALID_PARENT, _PARENT_PROBLEMS[error.reason]) from None
        except ConversationTooLong as error:
            raise ApiError(
                400,
                ErrorCode.CONVERSATION_TOO_LONG,
                f"With this message the conversation is {error.total} characters long; "
                f"the limit is {error.limit}. Start a new chat.",
            ) from None
        return _answer(state, turn, stream_id, new.options, release)
    except BaseException:
        release()
        raise


# The store's reasons why a parent cannot take a new message (turns.py), in the API's words.
_PARENT_PROBLEMS = {
    NOT_IN_CONVERSATION: "parent_id is not a message of this conversation.",
    NOT_AN_ANSWER: "A message follows an answer: parent_id must name an answer.",
}


@bp.post("/conversations/<conversation_id>/messages/<message_id>/regenerate")
@streams_rate_limit
def regenerate(conversation_id: str, message_id: str) -> Response:
    if request.content_length:
        require_json_content_type(request.mimetype)
    release = admit()
    try:
        state = _state()
        options = parse_answer_options(request.get_data(cache=False), state.settings)
        stream_id = new_stream_id()
        # WrongRole (not an answer) is the 400 not_an_answer (errors.store_error).
        turn = state.store.ask_again(
            conversation_id,
            message_id,
            model=options.model,
            default_model=state.settings.model,
            stream_id=stream_id,
        )
        return _answer(state, turn, stream_id, options, release)
    except BaseException:
        release()
        raise


def _answer(
    state: AppState, turn: Turn, stream_id: str, options: AnswerOptions, release: Release
) -> Response:
    """Stream the answer just started (`Store.ask`, `Store.ask_again`) as `stream_id`, writing it."""
    conversation, answer, context = turn.conversation, turn.answer, turn.context
    chat_request = ChatRequest(
        messages=tuple(ChatMessage(role=role, content=content) for role, content in context),
        model=turn.model,
        max_tokens=options.max_tokens if options.max_tokens is not None else conversation.max_tokens,
        temperature=options.temperature if options.temperature is not None else conversation.temperature,
    )
    target = AnswerTarget(answer.id, prompt_chars=sum(len(content) for _, content in context))
    relay = relay_for(
        chat_request,
        resumable=True,
        stream_id=stream_id,
        observer=AnswerRecorder(state.store, target, state.checkpoints),
        start_fields={
            "conversation_id": conversation.id,
            "user_message_id": turn.question_id,
            "message_id": answer.id,
        },
    )
    # The answer runs to its end whatever happens to this response, its first reader.
    return answer_response(state.answers.start(relay, release))


def read_conversation(conversation_id: str) -> dict[str, Any]:
    state = _state()
    state.store.mark_orphans_interrupted(
        state.orphan_age, is_live=state.streams.is_running, conversation_id=conversation_id
    )
    view = state.store.read_conversation(conversation_id)
    return conversation_json(view.conversation, view.messages)


# -- JSON ------------------------------------------------------------------------------


def conversation_summary(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title or "New chat",
        "created_at": _time(c.created_at),
        "updated_at": _time(c.updated_at),
    }


def conversation_json(c: Conversation, messages: list[Message]) -> dict[str, Any]:
    settings = app_state(current_app).settings
    return {
        **conversation_summary(c),
        "model": c.model or settings.model,
        "system_prompt": c.system_prompt,
        "temperature": c.temperature,
        "max_tokens": c.max_tokens,
        "messages": [message_json(m) for m in messages],
    }


def message_json(m: Message) -> dict[str, Any]:
    usage = m.usage
    return {
        "id": m.id,
        "parent_id": m.parent_id,
        "role": str(m.role),
        "content": m.content,
        "reasoning": m.reasoning or "",
        "status": str(m.status),
        "finish_reason": m.finish_reason,
        "error": None if m.error_code is None else {"code": m.error_code, "message": m.error_message or ""},
        "model": m.model,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "estimated": usage.estimated,
        },
        "ttft_ms": m.ttft_ms,
        "duration_ms": m.duration_ms,
        "stream_id": m.stream_id,
        "created_at": _time(m.created_at),
        "alternatives": list(m.alternatives),
    }


def _time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z, as the API writes every time."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
