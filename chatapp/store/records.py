"""What the store hands out: frozen dataclasses, detached from any session.

Nothing here loads lazily: every field is read inside the unit of work that made
the record, so a record can cross greenlets, threads and templates freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class Status(StrEnum):
    """A message's life: `streaming` while a stream writes it, then one of the final four."""

    STREAMING = "streaming"
    COMPLETE = "complete"  # the model finished (finish_reason stop or length)
    STOPPED = "stopped"  # the user stopped it; the text is what they saw
    INTERRUPTED = "interrupted"  # its worker died mid-answer; the text is the last checkpoint
    ERROR = "error"  # the model side failed; error_code says how


FINAL_STATUSES = frozenset({Status.COMPLETE, Status.STOPPED, Status.INTERRUPTED, Status.ERROR})


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts; `estimated` when the upstream never reported them (an answer stopped early)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    owner_id: str | None
    title: str | None  # None until the first user message gives it one
    title_is_custom: bool  # renamed by the user: no longer follows the first message
    model: str | None  # None: the server's default model
    system_prompt: str | None
    temperature: float | None
    max_tokens: int | None
    current_leaf_id: str | None  # the last message of the branch on display
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    conversation_id: str
    parent_id: str | None
    role: Role
    content: str
    reasoning: str | None
    status: Status
    finish_reason: str | None
    error_code: str | None
    error_message: str | None
    model: str | None  # the model that answered (assistant messages)
    usage: Usage | None
    ttft_ms: int | None  # time to first token
    duration_ms: int | None
    stream_id: str | None  # the live stream writing it; None once it is final
    created_at: datetime
    updated_at: datetime  # the last write: for a streaming answer, its last checkpoint
    # Ids of the messages with the same parent and role, this one included, oldest first:
    # the "‹ 1/2 ›" of regenerate and edit.
    alternatives: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConversationView:
    """A conversation with the branch on display, read together: what a page or `GET` shows."""

    conversation: Conversation
    messages: list[Message]
