"""Orphaned answers: ones a dead worker left `streaming`, found and marked `interrupted`
(their text as last checkpointed). Store.mark_orphans_interrupted says when."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .models import MESSAGES as M
from .models import utcnow
from .records import Status


def find_orphans(
    connection: Connection, cutoff: datetime, conversation_id: str | None
) -> list[tuple[str, str | None]]:
    """(id, stream_id) of the answers still `streaming` and last written before `cutoff`."""
    query = select(M.c.id, M.c.stream_id).where(M.c.status == Status.STREAMING.value, M.c.updated_at < cutoff)
    if conversation_id is not None:
        query = query.where(M.c.conversation_id == conversation_id)
    return [(row.id, row.stream_id) for row in connection.execute(query)]


def mark_interrupted(connection: Connection, message_ids: Collection[str], cutoff: datetime) -> list[str]:
    """Mark these orphans `interrupted`, their text as last saved; the ids really marked.

    The conditions are checked again: a checkpoint since `find_orphans` proves the stream alive.
    """
    if not message_ids:
        return []
    marked = connection.scalars(
        M.update()
        .where(
            M.c.id.in_(list(message_ids)),
            M.c.status == Status.STREAMING.value,
            M.c.updated_at < cutoff,
        )
        .values(status=Status.INTERRUPTED.value, stream_id=None, updated_at=utcnow())
        .returning(M.c.id)
    )
    return list(marked)
