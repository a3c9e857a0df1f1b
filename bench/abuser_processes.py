"""The abuse soak's abusers (harness/abusers.py), one kind to a child process of its own, so that
their thousands of sockets do not hold the load client's interpreter lock; each answers over a
pipe with a snapshot of its counts."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from harness.abusers import Abusers, Kind


def _abuse(port: int, kind: Kind, count: int, pipe: Connection) -> None:
    """In a child process: run the abusers until told to stop, answering each message with a
    snapshot of their counts."""
    longest = 0.0
    with Abusers(port, kind, count, keep_open=True) as abusers:
        while True:
            message = pipe.recv() if pipe.poll(1.0) else None
            # The harness keeps every answer's body and every lifetime: keep the longest, drop the rest.
            lifetimes, abusers.stats.lifetimes = abusers.stats.lifetimes, []
            abusers.stats.bodies = []
            longest = max([longest, *lifetimes])
            if message is None:
                continue
            stats = abusers.stats
            answered = sum(stats.answers.values())
            pipe.send(
                {
                    "held": abusers.held(),
                    "opened": stats.opened,
                    "connect_failed": stats.failed,
                    "refused_429": stats.answers["429"],
                    "answered_408": stats.answers["408"],
                    "other_answers": answered - stats.answers["429"] - stats.answers["408"],
                    "closed_unanswered": stats.closed_by_server - answered,
                    "longest_held_s": round(longest, 2),
                }
            )
            if message == "stop":
                return


class AbuserProcess:
    """One kind of abuser in a child process of its own; `stats()` and `stop()` ask it over a pipe."""

    def __init__(self, port: int, kind: Kind, count: int) -> None:
        self.kind = kind
        self._pipe, child = multiprocessing.Pipe()
        # spawn: forking a process that runs threads (asyncio's, the sampler's) is unsafe.
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(target=_abuse, args=(port, kind, count, child), daemon=True)
        self._process.start()
        self.pid: int = self._process.pid  # type: ignore[assignment]
        self.last: dict[str, Any] = {}

    def stats(self, message: str = "stats") -> dict[str, Any]:
        with contextlib.suppress(OSError, EOFError):
            self._pipe.send(message)
            if self._pipe.poll(30):
                self.last = self._pipe.recv()
        return self.last

    def stop(self) -> dict[str, Any]:
        stats = self.stats("stop")
        self._process.join(20)
        if self._process.is_alive():
            self._process.kill()
        return stats


def abuser_totals(abusers: list[AbuserProcess]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for a in abusers:
        totals.update({k: v for k, v in a.stats().items() if k != "longest_held_s"})
    return dict(totals)
