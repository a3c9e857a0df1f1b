"""`Store`: the conversations API, safe from any greenlet or thread; the one place work reaches the database.

Every method is one unit of work (two for `mark_orphans_interrupted`): `run(fn)`
runs `fn(connection)` in one transaction, commits, and returns what `fn` returned
(records, never rows). Where units run is the store's `Units` (offload.py): on
SQLite under gevent, in the calling greenlet on connections that never wait,
and in the store's dedicated thread when a unit would wait for a lock
(inline_first.py); on SQLite otherwise, a dedicated thread for reads and one for
writes; on PostgreSQL, inline (psycopg waits cooperatively). SQLite connections
are kept open for the store's life.

A unit that writes says so (`write=True`): on SQLite it takes the write lock at
BEGIN (a write that read first and found the lock taken later would fail at once
instead of waiting), and reads run on connections that refuse writes
(`PRAGMA query_only`), which catches a unit that forgot.

Measured in-process without gevent, in CPU per unit, before the single-message writes went:
`get_conversation` ~0.1 ms, a checkpoint of one answer ~0.15 ms, adding or ending a message
~0.3-0.4 ms (three or four statements, and a commit to the WAL); with a connection opened per
unit and ORM sessions they cost 1-4 ms. Sending a message is one unit (`ask`, turns.py): ~0.35 ms
of CPU under gevent, where the four units it used to take cost ~0.8 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import URL, Connection, make_url

from ..gevent_mode import gevent_patched
from . import answers, conversations, orphans, turns
from .answers import Outcome
from .conversations import UNSET, Unset
from .engine import DEFAULT_BUSY_TIMEOUT_S, create_store_engine
from .inline_first import InlineFirst
from .models import utcnow
from .offload import (
    MAX_NATIVE_THREADS,
    Inline,
    Lane,
    SplitLanes,
    Threads,
    Units,
    needs_native_thread,
)
from .records import Conversation, ConversationView, Message
from .turns import Turn

__all__ = ["DEFAULT_PAGE", "UNSET", "Store", "Unset"]

T = TypeVar("T")

# Conversations listed when no limit is asked for: the API's page (validation/) and the store's.
DEFAULT_PAGE = 50


class Store:
    """Conversations and messages in a SQL database. Create one per process, after gevent patched it."""

    def __init__(self, units: Units) -> None:
        """Prefer `Store.open(url)`, which decides where units run for the database and the process.
        The connections are opened now, where they will be used: a database that cannot be opened
        fails here."""
        self._units = units
        units.open()

    @classmethod
    def open(cls, url: str | URL, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Store:
        """A store on `url` (see engine.database_url); the schema must be migrated (migrate.py)."""
        backend = make_url(url).get_backend_name()
        if backend == "sqlite":
            return cls(_sqlite_units(url, busy_timeout_s))
        if needs_native_thread(backend):
            # A pool's queue waits on a patched Condition: only greenlets in the hub's thread may use one.
            engine = create_store_engine(url, pooled=False, busy_timeout_s=busy_timeout_s)
            return cls(Lane(engine, Threads(MAX_NATIVE_THREADS, "store")))
        return cls(Lane(create_store_engine(url, busy_timeout_s=busy_timeout_s), Inline()))

    @property
    def native_thread(self) -> bool:
        """Whether what waits for the database waits in a native thread (SQLite; PostgreSQL under
        gevent without psycopg's cooperative wait) rather than in the caller."""
        return self._units.native_thread

    def close(self) -> None:
        self._units.close()

    def run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run `fn(connection)` in one transaction and return its result, which must hold no rows.

        `write=True` for work that writes: on SQLite it takes the write lock at BEGIN, and reads
        run on connections that refuse writes. `fn` may run in a native thread, and run twice (a
        first try that found SQLite locked is rolled back): it must not touch greenlets or gevent
        objects, nor call the store.
        """
        return self._units.run(fn, write)

    # Conversations

    def create_conversation(
        self,
        *,
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        owner_id: str | None = None,
    ) -> Conversation:
        """A new, empty conversation. A title given here counts as a rename (it stays)."""
        settings = conversations.Settings(model, system_prompt, temperature, max_tokens)
        return self.run(lambda c: conversations.create(c, title, settings, owner_id), write=True)

    def get_conversation(self, conversation_id: str) -> Conversation:
        return self.run(lambda c: conversations.get(c, conversation_id))

    def read_conversation(self, conversation_id: str, leaf_id: str | None = None) -> ConversationView:
        """The conversation with the branch on display (or to `leaf_id`), in one consistent read."""
        return self.run(lambda c: conversations.read(c, conversation_id, leaf_id))

    def list_conversations(
        self,
        *,
        before: datetime | None = None,
        before_id: str | None = None,
        limit: int = DEFAULT_PAGE,
        owner_id: str | None = None,
    ) -> list[Conversation]:
        """Newest `updated_at` first; the next page is `before=<last one's updated_at>` (and its id as
        `before_id`, exact even when two were updated in the same microsecond)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return self.run(lambda c: conversations.list_page(c, owner_id, before, before_id, limit))

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        system_prompt: str | Unset | None = UNSET,
        temperature: float | Unset | None = UNSET,
        max_tokens: int | Unset | None = UNSET,
    ) -> Conversation:
        """Change the fields given (None clears a setting to the server's default). A title renames:
        it no longer follows the first message; None or "" returns to the automatic title."""
        given: dict[str, object] = {
            "model": model,
            "system_prompt": system_prompt,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        settings = {name: value for name, value in given.items() if value is not UNSET}
        return self.run(lambda c: conversations.update(c, conversation_id, title, settings), write=True)

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete it and all its messages."""
        self.run(lambda c: conversations.delete(c, conversation_id), write=True)

    # The tree of messages, and the answers written into it while they stream

    def set_current_leaf(self, conversation_id: str, message_id: str) -> list[Message]:
        """Show the branch through `message_id` (an alternative the user paged to), down to its
        newest leaf; returns that branch."""
        return self.run(lambda c: conversations.show(c, conversation_id, message_id), write=True)

    def get_message(self, conversation_id: str, message_id: str) -> Message:
        return self.run(lambda c: conversations.get_message(c, conversation_id, message_id))

    def ask(
        self,
        conversation_id: str,
        content: str,
        parent_id: str | Unset | None = UNSET,
        *,
        model: str | None,
        default_model: str,
        stream_id: str,
        max_chars: int | None = None,
    ) -> Turn:
        """A user message and its answer's start, with the model's context, in one unit: what sending
        a message does. After `parent_id`, which must be an answer of this conversation (else
        `InvalidParent`); UNSET: after the branch on display; None: a new first message. The answer
        is in `model`, else the conversation's, else `default_model`. `ConversationTooLong` when the
        system prompt, the branch and the question pass `max_chars`; nothing is written then."""
        return self.run(
            lambda c: turns.ask(
                c, conversation_id, content, parent_id, model, default_model, max_chars, stream_id
            ),
            write=True,
        )

    def ask_again(
        self, conversation_id: str, answer_id: str, *, model: str | None, default_model: str, stream_id: str
    ) -> Turn:
        """Another answer to a question, with the model's context, in one unit: what regenerating
        does. A new answer beside the assistant message `answer_id` (`WrongRole` for a user
        message), shown from now on, in `model`, else the conversation's, else `default_model`."""
        return self.run(
            lambda c: turns.ask_again(c, conversation_id, answer_id, model, default_model, stream_id),
            write=True,
        )

    def checkpoint_many(self, snapshots: Sequence[tuple[str, str, str | None]]) -> list[str]:
        """Save the text so far of streaming answers, (message_id, content, reasoning) each, in one
        unit: a process's checkpoint writer saves all its live answers at once, at most once a
        second, never per token, and also when no text came (it proves a stream alive to
        `mark_orphans_interrupted`). Returns the ids written, in the order given; an answer not
        among them has ended (it is final, or gone), and nothing was written to it."""
        if not snapshots:
            return []
        return self.run(lambda c: answers.checkpoint_many(c, snapshots), write=True)

    def finish_answer(self, message_id: str, content: str, reasoning: str | None, outcome: Outcome) -> bool:
        """Write an answer's end: its final text and how it ended (`Outcome`), and touch its
        conversation. True when written; False when the answer had already ended (it is left as it
        was); `MessageNotFound` when there is no such message. Nothing is read back: the stream
        that wrote the answer has no use for its record."""
        return self.run(lambda c: answers.finish(c, message_id, content, reasoning, outcome), write=True)

    def mark_orphans_interrupted(
        self,
        older_than: timedelta,
        *,
        is_live: Callable[[str], bool] | None = None,
        conversation_id: str | None = None,
    ) -> list[str]:
        """Mark `interrupted` the answers left `streaming` by a dead worker; the ids marked.

        An answer is an orphan when its last checkpoint is older than `older_than` (a few
        checkpoint intervals) and `is_live(stream_id)` is false. `is_live` knows only this
        process's streams; a stream in another worker proves itself alive by its checkpoints.
        Call it at start-up and before showing a conversation (`conversation_id`).
        """
        cutoff = utcnow() - older_than
        candidates = self.run(lambda c: orphans.find_orphans(c, cutoff, conversation_id))
        # is_live runs here, in the caller's greenlet, not in the unit's native thread.
        ids = [mid for mid, stream_id in candidates if not (is_live and stream_id and is_live(stream_id))]
        if not ids:
            return []
        return self.run(lambda c: orphans.mark_interrupted(c, ids, cutoff), write=True)


def _sqlite_units(url: str | URL, busy_timeout_s: float) -> Units:
    """Under gevent, units in the calling greenlet unless they would wait (inline_first.py);
    otherwise (several threads may call) a thread and a kept connection for reads, and for writes."""
    writes = create_store_engine(url, busy_timeout_s=busy_timeout_s)
    if gevent_patched():
        return InlineFirst(
            create_store_engine(url, read_only=True, waits=False),
            create_store_engine(url, waits=False),
            Lane.dedicated(writes, "store"),
        )
    reads = create_store_engine(url, read_only=True, busy_timeout_s=busy_timeout_s)
    return SplitLanes(Lane.dedicated(reads, "store-reads"), Lane.dedicated(writes, "store-writes"))
