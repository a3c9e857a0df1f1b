"""The store's typed errors: what the HTTP layer turns into a 4xx, and nothing else.

`ConversationNotFound` -> 404 `conversation_not_found`, `MessageNotFound` -> 404
`message_not_found`, `InvalidParent` -> 400 `invalid_parent` (its `reason` is one of turns.py's
constants), `WrongRole` -> 400 (regenerating a user message), `ConversationTooLong` -> 400
`conversation_too_long`.
Database failures (a lock that outlived the busy timeout, a lost connection) are SQLAlchemy's
own exceptions and stay 500s.
"""

from __future__ import annotations


class StoreError(Exception):
    """Something asked of the store that the stored data does not allow."""


class ConversationNotFound(StoreError):
    """No conversation has this id."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"No conversation {conversation_id!r}.")
        self.conversation_id = conversation_id


class MessageNotFound(StoreError):
    """No message has this id (in the conversation named, when one is)."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"No message {message_id!r} in this conversation.")
        self.message_id = message_id


class InvalidParent(StoreError):
    """The message given as a parent cannot be one: `reason` says why, as one of turns.py's
    constants (`NOT_IN_CONVERSATION`, `NOT_AN_ANSWER`), which the HTTP layer words for people."""

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"Message {message_id!r} cannot be the parent here: {reason}.")
        self.message_id = message_id
        self.reason = reason


class WrongRole(StoreError):
    """The message has the wrong role for what was asked (`ask_again` beside a question, not an answer)."""

    def __init__(self, message_id: str, expected: str) -> None:
        super().__init__(f"Message {message_id!r} is not a {expected} message.")
        self.message_id = message_id
        self.expected = expected


class ConversationTooLong(StoreError):
    """With the new message, the branch sent to the model would pass the length allowed."""

    def __init__(self, total: int, limit: int) -> None:
        super().__init__(
            f"With this message the conversation is {total} characters long; the limit is {limit}."
        )
        self.total = total
        self.limit = limit
