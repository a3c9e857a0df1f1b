"""`Store`: the conversations API, safe to call from any greenlet; the one place work reaches the database.

Every method is one unit of work: `run(fn)` opens a session, runs `fn(session)`
in one transaction, commits and closes, and returns what `fn` returned (records,
never rows). Under gevent, `run` executes SQLite work in one of the hub's native
threads, so a locked or slow database stalls no other greenlet (offload.py).

Why that is correct in a native thread, although monkey-patching has turned
`threading.Lock` (and so every lock SQLAlchemy makes) into a gevent lock, made
for greenlets of one hub:
- the unit's `Session` is made, used and closed inside that thread, and is never
  shared: nothing from it escapes but frozen records;
- SQLite has no pool (`NullPool`): the sqlite3 connection is opened, used and
  closed in that same thread (sqlite3's check_same_thread holds), and no pool
  queue, whose patched Condition would park a native thread as if a greenlet, is
  ever waited on;
- SQLAlchemy's once-only locked steps (configuring the mappers, initialising the
  dialect on the first connection) run in the creating thread (models.py,
  `Store.__init__`). What remains per unit are two id counters (a lock held for
  one `next()`) and the statement cache's lock, only ever tried without blocking;
  all units of such a store run in the pool, so those locks are contended only
  between pool threads, which gevent's locks support (since gevent 20.12, a
  thread with no hub waits for one on a native lock). Measured: 100 greenlets
  using the whole API at once, 1,400 units, none failed (tests/integration/
  test_store_gevent.py runs 10).
PostgreSQL runs inline (psycopg waits cooperatively), with a pool whose patched
locks are then used by greenlets only, as gevent means them to be.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from . import conversations, messages
from .conversations import UNSET, Unset
from .engine import DEFAULT_BUSY_TIMEOUT_S, WRITE_OPTION, create_store_engine
from .messages import Outcome
from .models import utcnow
from .offload import Offloader, needs_native_thread
from .records import Conversation, ConversationView, Message, Status, Usage

__all__ = ["UNSET", "Store", "Unset"]

T = TypeVar("T")

DEFAULT_PAGE = 50


class Store:
    """Conversations and messages in a SQL database. Create one per process, after gevent patched it."""

    def __init__(self, engine: Engine, *, native_thread: bool | None = None) -> None:
        """Prefer `Store.open(url)`, which makes the engine to match. `native_thread` forces where units
        run under gevent (None: decided from the backend); tests use it to show the difference."""
        self.engine = engine
        backend = engine.dialect.name
        if native_thread is None:
            native_thread = needs_native_thread(backend)
        self.native_thread = native_thread  # under gevent: units run in the hub's native threads
        self._offloader = Offloader(native_thread)
        self._reads = sessionmaker(engine, expire_on_commit=False)
        self._writes = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False)
        # The first connection initialises the dialect under a lock: here, in the creating thread.
        with engine.connect():
            pass

    @classmethod
    def open(cls, url: str | URL, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Store:
        """A store on `url` (see engine.database_url); the schema must be migrated (migrate.py)."""
        native_thread = needs_native_thread(make_url(url).get_backend_name())
        # A pool's queue waits on a patched Condition: only greenlets in the hub's thread may use one.
        engine = create_store_engine(url, pooled=not native_thread, busy_timeout_s=busy_timeout_s)
        return cls(engine, native_thread=native_thread)

    def close(self) -> None:
        self.engine.dispose()

    def run(self, fn: Callable[[Session], T], *, write: bool = False) -> T:
        """Run `fn(session)` in one transaction and return its result, which must hold no ORM rows.

        `write=True` for work that writes: on SQLite it takes the write lock at BEGIN. Under
        gevent `fn` may run in a native thread: it must not touch greenlets or gevent objects.
        """
        return self._offloader.call(lambda: self._unit(fn, write))

    def _unit(self, fn: Callable[[Session], T], write: bool) -> T:
        sessions = self._writes if write else self._reads
        with sessions() as session, session.begin():
            return fn(session)

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
        return self.run(lambda s: conversations.create(s, title, settings, owner_id), write=True)

    def get_conversation(self, conversation_id: str) -> Conversation:
        return self.run(lambda s: conversations.get(s, conversation_id))

    def read_conversation(self, conversation_id: str, leaf_id: str | None = None) -> ConversationView:
        """The conversation with the branch on display (or to `leaf_id`), in one consistent read."""
        return self.run(lambda s: conversations.read(s, conversation_id, leaf_id))

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
        return self.run(lambda s: conversations.list_page(s, owner_id, before, before_id, limit))

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
        return self.run(lambda s: conversations.update(s, conversation_id, title, settings), write=True)

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete it and all its messages."""
        self.run(lambda s: conversations.delete(s, conversation_id), write=True)

    # The tree of messages

    def branch(self, conversation_id: str, leaf_id: str | None = None) -> list[Message]:
        """The messages from the root to the leaf on display (or to `leaf_id`), with their alternatives."""
        return self.read_conversation(conversation_id, leaf_id).messages

    def set_current_leaf(self, conversation_id: str, message_id: str) -> list[Message]:
        """Show the branch through `message_id` (an alternative the user paged to), down to its
        newest leaf; returns that branch."""
        return self.run(lambda s: conversations.show(s, conversation_id, message_id), write=True)

    def get_message(self, conversation_id: str, message_id: str) -> Message:
        return self.run(lambda s: messages.get(s, conversation_id, message_id))

    def add_user_message(
        self, conversation_id: str, content: str, parent_id: str | None = None, *, at_root: bool = False
    ) -> Message:
        """A user message after `parent_id` (a message of this conversation, else `InvalidParent`);
        with None, after the branch on display, or with `at_root=True` a new first message (beside
        the others at the root). Names the conversation on its first message."""
        return self.run(
            lambda s: messages.add_question(s, conversation_id, content, parent_id, at_root), write=True
        )

    def edit_user_message(self, conversation_id: str, message_id: str, content: str) -> Message:
        """Edit and resend: a new user message beside `message_id` (same parent), the old branch kept."""
        return self.run(lambda s: messages.edit_question(s, conversation_id, message_id, content), write=True)

    # Answers, written while they stream

    def start_assistant_message(
        self, conversation_id: str, parent_id: str, *, model: str | None, stream_id: str
    ) -> Message:
        """An answer to the user message `parent_id`, `streaming`, now shown. A second answer to the
        same question is an alternative (regenerate)."""
        return self.run(
            lambda s: messages.start_answer(s, conversation_id, parent_id, model, stream_id), write=True
        )

    def regenerate(
        self, conversation_id: str, message_id: str, *, model: str | None, stream_id: str
    ) -> Message:
        """A new answer beside the assistant message `message_id` (`WrongRole` for a user message)."""
        return self.run(
            lambda s: messages.regenerate(s, conversation_id, message_id, model, stream_id), write=True
        )

    def checkpoint(self, message_id: str, content: str, reasoning: str | None = None) -> bool:
        """Save a streaming answer's text so far. Call it at most once a second, never per token, and
        also when no text came (it proves the stream alive to `mark_orphans_interrupted`).
        False when the answer has already ended."""
        return self.run(lambda s: messages.checkpoint(s, message_id, content, reasoning), write=True)

    def finish_message(
        self,
        message_id: str,
        *,
        status: Status,
        content: str,
        reasoning: str | None = None,
        finish_reason: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        usage: Usage | None = None,
        model: str | None = None,
        ttft_ms: int | None = None,
        duration_ms: int | None = None,
    ) -> Message:
        """Write an answer's end: its final text and how it ended. `usage.estimated` when the
        upstream never reported it; `model`, the one that served (None keeps the one asked)."""
        outcome = Outcome(
            status, finish_reason, error_code, error_message, usage, model, ttft_ms, duration_ms
        )
        return self.run(lambda s: messages.finish(s, message_id, content, reasoning, outcome), write=True)

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
        candidates = self.run(lambda s: messages.find_orphans(s, cutoff, conversation_id))
        # is_live runs here, in the caller's greenlet, not in the unit's native thread.
        ids = [mid for mid, stream_id in candidates if not (is_live and stream_id and is_live(stream_id))]
        if not ids:
            return []
        return self.run(lambda s: messages.mark_interrupted(s, ids, cutoff), write=True)

    def context_for(self, conversation_id: str, user_message_id: str) -> list[tuple[str, str]]:
        """The model's input for an answer to `user_message_id`: (role, content) from the system prompt
        through the stored branch to that message. Earlier answers go as stored (stopped: partial)."""
        return self.run(lambda s: messages.context(s, conversation_id, user_message_id))
