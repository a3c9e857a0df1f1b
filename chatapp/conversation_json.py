"""Stored conversations as the API's JSON (docs/api.md, "Conversations"), for the API and the page
alike: every time in UTC with microseconds and a Z, every optional field present."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .store import Conversation, Message


def conversation_summary(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title or "New chat",
        "created_at": api_time(c.created_at),
        "updated_at": api_time(c.updated_at),
    }


def conversation_json(c: Conversation, messages: list[Message], default_model: str) -> dict[str, Any]:
    return {
        **conversation_summary(c),
        "model": c.model or default_model,
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
        "created_at": api_time(m.created_at),
        "alternatives": list(m.alternatives),
    }


def api_time(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z, as the API writes every time."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
