"""An answer while it streams and at its end: its checkpoints (`checkpoint_many`) and its final
state (`finish`, with the `Outcome`).

An answer begins `streaming` (turns.py). A process's checkpoint writer saves the text so far of
all its live answers in one unit, at most once a second and never per token; the stream that
wrote the answer then writes how it ended. A worker killed mid-answer leaves it `streaming`;
orphans.py turns it `interrupted`, text kept. These run for every answer, so each is a few
prepared Core statements (queries.py says why), and nothing is read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.engine import Connection

from .errors import MessageNotFound
from .models import CONVERSATIONS, MESSAGES, utcnow
from .records import FINAL_STATUSES, Status, Usage

C, M = CONVERSATIONS, MESSAGES

# A checkpoint or the end may also land on an answer marked interrupted by mistake (its
# stream was alive after all, only late): the live stream's write wins. Spelled as OR,
# not IN: an IN list is an "expanding" parameter, which executemany() refuses.
_WRITABLE = or_(M.c.status == Status.STREAMING.value, M.c.status == Status.INTERRUPTED.value)
_THIS_ONE = M.c.id == bindparam("message_id")

_CHECKPOINT = M.update().where(_THIS_ONE, _WRITABLE).values(status=Status.STREAMING.value)
_STILL_WRITABLE = (
    select(M.c.id)
    .where(M.c.id.in_(bindparam("message_ids", expanding=True)), _WRITABLE)
    .order_by(M.c.id)
    .with_for_update()  # PostgreSQL: they stay writable until this unit ends; SQLite: already so
)
_FINISH = M.update().where(_THIS_ONE, _WRITABLE).values(stream_id=None).returning(M.c.conversation_id)
_EXISTS = select(M.c.id).where(_THIS_ONE)
_TOUCH = C.update().where(C.c.id == bindparam("conversation_id"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an answer ended: everything `finish` writes besides its text."""

    status: Status
    finish_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    usage: Usage | None = None  # `estimated` when the upstream never reported it
    model: str | None = None  # the model the upstream says answered; None keeps the one asked
    ttft_ms: int | None = None
    duration_ms: int | None = None


def checkpoint_many(connection: Connection, answers: Sequence[tuple[str, str, str | None]]) -> list[str]:
    """Save the text so far of many streaming answers, (id, content, reasoning) each, in one
    executemany; the ids written, in the order given. An id missing there had ended (or was never
    an answer): nothing was written to it."""
    ids = list(dict.fromkeys(message_id for message_id, _, _ in answers))
    writable = set(connection.scalars(_STILL_WRITABLE, {"message_ids": ids}))
    if not writable:
        return []
    now = utcnow()
    connection.execute(
        _CHECKPOINT,
        [
            {"message_id": message_id, "content": content, "reasoning": reasoning, "updated_at": now}
            for message_id, content, reasoning in answers
            if message_id in writable
        ],
    )
    return [message_id for message_id in ids if message_id in writable]


def finish(
    connection: Connection, message_id: str, content: str, reasoning: str | None, outcome: Outcome
) -> bool:
    """Write an answer's final text and how it ended, and touch its conversation. True when
    written; False when it had already ended (left as it was); `MessageNotFound` when there is no
    such message. The stream that wrote the answer has no use for its record: none is read back."""
    if outcome.status not in FINAL_STATUSES:
        raise ValueError(f"an answer ends as one of {sorted(FINAL_STATUSES)}, not {outcome.status!r}")
    now = utcnow()
    written = connection.execute(_FINISH, _end_values(message_id, content, reasoning, outcome, now)).first()
    if written is not None:
        connection.execute(_TOUCH, {"conversation_id": written.conversation_id, "updated_at": now})
        return True
    if connection.execute(_EXISTS, {"message_id": message_id}).first() is None:
        raise MessageNotFound(message_id)
    return False


def _end_values(
    message_id: str, content: str, reasoning: str | None, outcome: Outcome, now: datetime
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "message_id": message_id,
        "content": content,
        "reasoning": reasoning,
        "status": outcome.status.value,
        "finish_reason": outcome.finish_reason,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "ttft_ms": outcome.ttft_ms,
        "duration_ms": outcome.duration_ms,
        "updated_at": now,
    }
    if outcome.model:
        values["model"] = outcome.model
    if outcome.usage is not None:
        usage = outcome.usage
        values.update(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            usage_estimated=usage.estimated,
        )
    return values
