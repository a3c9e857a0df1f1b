"""The one interface between a worker process and whatever it shares with the others."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from ..admission import Release
from ..answer_log import AnswerLog


class SharedStateUnavailable(Exception):
    """The shared state (Redis) cannot be reached, and the answer needs it."""


class RemoteFollow(Protocol):
    """A reader of an answer that runs in another process, opened by `Coordinator.follow`."""

    def frames(self) -> Iterator[bytes]: ...


class Coordinator(Protocol):
    def listen(self, on_stop: Callable[[str], bool]) -> None:
        """Have `on_stop(stream_id)` called in this process when another one asks to stop a stream;
        it answers whether the stream ran here (and was stopped)."""

    def admit(self, client: str) -> Release:
        """Count one more stream for `client` across every process, or raise `admission.ClientBusy`."""

    def running(self, stream_id: str) -> None:
        """A stream starts in this process (before its `start` event goes out); a resumable
        answer's log is `mirror`ed before that."""

    def finished(self, stream_id: str) -> None:
        """It ended."""

    def stop_elsewhere(self, stream_id: str) -> bool:
        """Ask the process that runs `stream_id` to stop it; False when none does."""

    def mirror(self, log: AnswerLog) -> None:
        """Share a resumable answer's log as it grows (`changed` after each append, and its end)."""

    def changed(self, log: AnswerLog) -> None: ...

    def follow(self, stream_id: str, position: int, heartbeat_s: float) -> RemoteFollow | None:
        """A reader of an answer logged by another process, from `position`; None when no process
        has it (unknown, or its retention passed)."""

    def read_elsewhere(self, stream_id: str) -> bool:
        """True when a reader in another process follows `stream_id`."""
