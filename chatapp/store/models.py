"""The schema: conversations and their messages, as SQLAlchemy 2.x typed declarative models.

Messages form a tree (`parent_id`): a regenerated answer is a second assistant
child of the same user message, an edited question a second user child of the
same parent. `conversations.current_leaf_id` says which branch is on display; it
has no foreign key on purpose, so the two tables do not reference each other in
a cycle (which would complicate deletes and SQLite's table rebuilds); the store
only ever writes ids of the conversation's own messages there.

`owner_id` is nullable and indexed with `updated_at`, so that per-user accounts
can be added by filling it, without rewriting the tables.

Every change here needs a migration in `migrations/versions/` (the tests compare
the migrated schema with these models).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, mapped_column

from .records import Role, Status

ID_LENGTH = 32
MODEL_NAME_LENGTH = 200

# Named constraints: Alembic can only drop or alter (SQLite: rebuild) what has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """122 random bits as 32 hex characters: unguessable, URL-safe, one case."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime with microseconds, the same on SQLite and PostgreSQL.

    PostgreSQL keeps `timestamptz` (microseconds). SQLite has no datetime type:
    SQLAlchemy stores a fixed-width ISO string with microseconds, so ordering and
    `<` comparisons work as text, but it drops the zone; values are stored as naive
    UTC and come back with UTC attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store: use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _one_of(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(Text)
    title_is_custom: Mapped[bool] = mapped_column(Boolean, default=False)
    model: Mapped[str | None] = mapped_column(String(MODEL_NAME_LENGTH))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    current_leaf_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # The sidebar: one owner's conversations, newest first, paged by updated_at.
        Index(None, "owner_id", "updated_at"),
    )


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    parent_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("messages.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    reasoning: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(MODEL_NAME_LENGTH))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    ttft_ms: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    stream_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(_one_of("role", Role), name="role"),
        CheckConstraint(_one_of("status", Status), name="status"),
        # A conversation's whole tree, in order, in one query.
        Index(None, "conversation_id", "created_at"),
        # The parent's foreign key (PostgreSQL indexes no foreign key by itself).
        Index(None, "parent_id"),
        # Orphaned answers: status = 'streaming' and last written before a cutoff.
        Index(None, "status", "updated_at"),
    )


# The tables, for the store's Core statements (its units run no ORM: see queries.py).
CONVERSATIONS: Table = Base.metadata.tables["conversations"]
MESSAGES: Table = Base.metadata.tables["messages"]

# Configure now, at import, in one thread: SQLAlchemy takes a lock to configure mappers
# lazily on first use of a mapped class in a statement, which may be in a native thread (offload.py).
configure_mappers()
