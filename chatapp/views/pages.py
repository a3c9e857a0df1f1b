"""The server-rendered pages: a new chat at `/`, and a stored conversation at `/c/<id>` whose branch
on display is in the HTML before any script runs (readable with JavaScript off), both with the
sidebar of conversations. The scripts take their configuration from a JSON data block, never an
inline script, so the strict Content-Security-Policy holds."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, url_for

from ..conversation_json import conversation_json, conversation_summary
from ..state import app_state
from ..store.errors import ConversationNotFound

bp = Blueprint("pages", __name__)

# Conversations in the sidebar's first page; "Load more" asks the API for the next.
SIDEBAR_PAGE = 30


@bp.get("/")
def chat_page() -> str:
    return _chat_page(None)


@bp.get("/c/<conversation_id>")
def conversation_page(conversation_id: str) -> str | tuple[str, int]:
    state = app_state(current_app)
    try:
        view = state.store.read_conversation(conversation_id)
    except ConversationNotFound:
        # The app answers errors as JSON; a person who followed a stale link gets a page.
        return render_template("not_found.html"), 404
    return _chat_page(conversation_json(view.conversation, view.messages, state.settings.model))


def _chat_page(conversation: dict[str, Any] | None) -> str:
    state = app_state(current_app)
    found = state.store.list_conversations(limit=SIDEBAR_PAGE)
    sidebar = [conversation_summary(c) for c in found]
    more = len(found) == SIDEBAR_PAGE
    settings = {key: value for key, value in (conversation or {}).items() if key != "messages"}
    page_config = {
        "chatUrl": url_for("api.chat"),
        "conversationsUrl": url_for("conversations.list_conversations"),
        "modelsUrl": url_for("models.list_models"),
        "newChatUrl": url_for("pages.chat_page"),
        "conversationPageUrl": _conversation_url_prefix(),
        # Where the page reattaches to an answer (`<streamsUrl>/<stream_id>`).
        "streamsUrl": url_for("reattach.follow", stream_id="_").removesuffix("/_"),
        # No bytes for two of these intervals: the page takes the connection for dead and reattaches.
        "heartbeatS": state.settings.heartbeat_s,
        "conversation": settings or None,
        # The composer counts characters as this limit nears, and says so before sending past it.
        "maxMessageChars": state.settings.max_message_chars,
    }
    return render_template(
        "chat.html",
        conversation=conversation,
        messages=conversation["messages"] if conversation else [],
        model=conversation["model"] if conversation else state.settings.model,
        sidebar=sidebar,
        next_before=sidebar[-1]["updated_at"] if more else None,
        next_before_id=sidebar[-1]["id"] if more else None,
        page_config=page_config,
    )


def _conversation_url_prefix() -> str:
    """A conversation page's URL without the id (`/c/`): the page appends a new conversation's id."""
    return url_for("pages.conversation_page", conversation_id="_").removesuffix("_")
