"""One process is the whole server: nothing to share, every question is answered locally."""

from __future__ import annotations

from collections.abc import Callable

from ..admission import Release
from ..answer_log import AnswerLog
from .base import RemoteFollow


def _nothing() -> None:
    pass


class LocalCoordinator:
    def listen(self, on_stop: Callable[[str], bool]) -> None:
        pass

    def admit(self, client: str) -> Release:
        return _nothing  # this process's own per-client cap (admission.py) is the whole cap

    def running(self, stream_id: str) -> None:
        pass

    def finished(self, stream_id: str) -> None:
        pass

    def stop_elsewhere(self, stream_id: str) -> bool:
        return False

    def mirror(self, log: AnswerLog) -> None:
        pass

    def changed(self, log: AnswerLog) -> None:
        pass

    def follow(self, stream_id: str, position: int, heartbeat_s: float) -> RemoteFollow | None:
        return None

    def read_elsewhere(self, stream_id: str) -> bool:
        return False
