"""Answers that outlive their connection: each stored conversation's answer runs in a greenlet of
its own, writing an `AnswerLog`, instead of in the response that asked for it.

The response that started the answer, and any reader that reattaches later
(`GET /api/streams/<id>`), only follow the log: a dropped connection stops a reader, never the
model. An answer ends by itself (`done`), by the stop endpoint, by the relay's limits
(`CHATAPP_MAX_STREAM_S`, the upstream idle limit), by shutdown (the registry's drain cancels it
like any stream), or when nobody has read it for `CHATAPP_DETACHED_MAX_S`.

An ended answer's log is kept for `CHATAPP_STREAM_RETENTION_S`, so that a reader that comes back
after the end still gets everything up to `done`; after that the stored message is the truth.
"""

from __future__ import annotations

import logging
import threading
import time

from .answer_log import KEEP_ALIVE, AnswerLog
from .coordination import Coordinator
from .relay import Relay
from .streams import Cause, Release, StreamRegistry

log = logging.getLogger(__name__)

# How often ended logs are dropped and unread answers looked for.
TICK_S = 1.0


class AnswerJobs:
    """This process's resumable answers: those running and those recently ended."""

    def __init__(
        self, registry: StreamRegistry, coordinator: Coordinator, *, retention_s: float, unread_max_s: float
    ) -> None:
        self._registry = registry
        self._coordinator = coordinator
        self._retention_s = retention_s
        self._unread_max_s = unread_max_s
        self._logs: dict[str, AnswerLog] = {}
        self._ticker: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._logs)

    def start(self, relay: Relay, release: Release) -> AnswerLog:
        """Run `relay` to its end in a greenlet of its own; `release` (its admission) once it ended."""
        answer_log = AnswerLog(relay.stream_id)
        self._logs[relay.stream_id] = answer_log
        self._coordinator.mirror(answer_log)
        threading.Thread(
            target=self._run, args=(relay, answer_log, release), name=f"answer-{relay.stream_id}", daemon=True
        ).start()
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="answer-jobs", daemon=True)
            self._ticker.start()
        return answer_log

    def _run(self, relay: Relay, answer_log: AnswerLog, release: Release) -> None:
        frames = relay.frames()
        try:
            for chunk in frames:
                # The relay's keep-alives are for a client socket; each reader sends its own.
                if chunk.startswith(KEEP_ALIVE):
                    chunk = chunk[len(KEEP_ALIVE) :]
                if chunk:
                    answer_log.append(chunk, relay.sequence)
                    self._coordinator.changed(answer_log)
        except Exception:
            log.exception("answer %s failed", relay.stream_id)
        finally:
            frames.close()
            answer_log.end()
            self._coordinator.changed(answer_log)
            release()

    def log_for(self, stream_id: str) -> AnswerLog | None:
        """The log of an answer of this process, running or ended within the retention."""
        answer_log = self._logs.get(stream_id)
        if answer_log is None or self._expired(answer_log, time.monotonic()):
            return None
        return answer_log

    def _expired(self, answer_log: AnswerLog, now: float) -> bool:
        return answer_log.ended_at is not None and now - answer_log.ended_at > self._retention_s

    def _tick(self) -> None:
        while True:
            time.sleep(TICK_S)
            now = time.monotonic()
            for stream_id, answer_log in list(self._logs.items()):
                if self._expired(answer_log, now):
                    del self._logs[stream_id]
                elif self._unread_too_long(answer_log, now):
                    log.info("answer %s: nobody read it for %g s; ending it", stream_id, self._unread_max_s)
                    self._registry.cancel(stream_id, Cause.UNREAD)

    def _unread_too_long(self, answer_log: AnswerLog, now: float) -> bool:
        since = answer_log.unread_since
        if not self._unread_max_s or answer_log.ended or since is None or now - since < self._unread_max_s:
            return False
        if self._coordinator.read_elsewhere(answer_log.stream_id):
            answer_log.unread_since = now
            return False
        return True
