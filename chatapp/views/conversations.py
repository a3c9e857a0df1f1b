"""The stored conversations' API (docs/api.md, "Conversations"): JSON in and out, and two
endpoints that stream an answer exactly as `POST /api/chat` does while the answer is kept."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from ..conversation_json import api_time, conversation_json, conversation_summary
from ..llm.base import ChatRequest
from ..llm.base import Message as ChatMessage
from ..protocol import new_stream_id
from ..rate_limits import streams_rate_limit
from ..state import AppState, app_state
from ..store import Store, Turn
from ..stream_responses import admitted_stream, answer_response
from ..streaming.admission import Release
from ..streaming.recording import AnswerRecorder, AnswerTarget
from ..validation import require_json_content_type
from ..validation.conversation_requests import (
    AnswerOptions,
    parse_answer_options,
    parse_conversation_changes,
    parse_new_message,
    parse_page,
)

bp = Blueprint("conversations", __name__, url_prefix="/api")


def _state() -> AppState:
    return app_state(current_app)


def _store() -> Store:
    return _state().store


@bp.get("/conversations")
def list_conversations() -> dict[str, Any]:
    page = parse_page(request.args.to_dict())
    found = _store().list_conversations(before=page.before, before_id=page.before_id, limit=page.limit)
    more = len(found) == page.limit
    return {
        "conversations": [conversation_summary(c) for c in found],
        "next_before": api_time(found[-1].updated_at) if more else None,
        "next_before_id": found[-1].id if more else None,
    }


@bp.post("/conversations")
def create_conversation() -> tuple[dict[str, Any], int]:
    require_json_content_type(request.mimetype)
    state = _state()
    changes = parse_conversation_changes(request.get_data(cache=False), state.settings, allow_show=False)
    conversation = state.store.create_conversation(**changes.fields)
    return conversation_json(conversation, [], state.settings.model), 201


@bp.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> dict[str, Any]:
    return _read(conversation_id)


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
    return _read(conversation_id)


@bp.delete("/conversations/<conversation_id>")
def delete_conversation(conversation_id: str) -> tuple[str, int]:
    _store().delete_conversation(conversation_id)
    return "", 204


@bp.post("/conversations/<conversation_id>/messages")
@streams_rate_limit
def send_message(conversation_id: str) -> Response:
    require_json_content_type(request.mimetype)
    with admitted_stream() as release:
        state = _state()
        new = parse_new_message(request.get_data(cache=False), state.settings)
        stream_id = new_stream_id()
        # InvalidParent and ConversationTooLong are 400s (errors.store_error).
        turn = state.store.ask(
            conversation_id,
            new.content,
            new.parent_id,
            model=new.options.model,
            default_model=state.settings.model,
            stream_id=stream_id,
            max_chars=state.settings.max_conversation_chars,
        )
        return _answer(state, turn, stream_id, new.options, release)


@bp.post("/conversations/<conversation_id>/messages/<message_id>/regenerate")
@streams_rate_limit
def regenerate(conversation_id: str, message_id: str) -> Response:
    if request.content_length:
        require_json_content_type(request.mimetype)
    with admitted_stream() as release:
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
    return answer_response(
        chat_request,
        release,
        stream_id=stream_id,
        observer=AnswerRecorder(state.store, target, state.checkpoints),
        start_fields={
            "conversation_id": conversation.id,
            "user_message_id": turn.question_id,
            "message_id": answer.id,
        },
    )


def _read(conversation_id: str) -> dict[str, Any]:
    state = _state()
    view = state.store.read_conversation(conversation_id)
    return conversation_json(view.conversation, view.messages, state.settings.model)
