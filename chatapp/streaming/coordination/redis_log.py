"""Resumable answers' logs in Redis Streams: mirrored by the process that generates them, followed
by readers in any other process (XREAD BLOCK).

One entry per flush, not per token: the writer gathers what every answer of this process
appended during `FLUSH_S` and sends it in one pipeline. Entry ids are `<last sequence>-0`
(`<last>-1` for an end with no new frames), so a reader's position maps straight onto an id and
XREAD from `<position>-0` returns exactly what comes after it. Each entry holds `f` (its first
sequence), `d` (the frames) and `e` (1 when it ends the answer). The key is trimmed
(MAXLEN ~) and expires `retention_s` after the answer ends.

When a flush fails (Redis went away) the answers it held are sent again whole once Redis is
back, since Redis may have come back empty.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import RedisError

from ..answer_log import KEEP_ALIVE, AnswerLog, data_after, frames_after
from .redis_schema import FOLLOW_CHANNEL, log_key, reading_key, running_key

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

# How long the writer gathers appends before it sends them. An answer that a reader in another
# process follows (it says so on FOLLOW_CHANNEL, once per heartbeat) is sent every HOT_FLUSH_S:
# that reader lags at most that much behind one in this process. The others, read by nobody
# elsewhere, only need to be there when someone comes: every COLD_FLUSH_S, with several tokens
# to an entry, which is what keeps the mirror's cost per token low (an XADD costs ~17 us of CPU
# in a pipeline, about as much as relaying a token).
HOT_FLUSH_S = 0.03
COLD_FLUSH_S = 0.5
# Entries kept per answer (one per flush): far more than an answer of CHATAPP_MAX_STREAM_S writes.
MAX_ENTRIES = 100_000


class LogMirror:
    """Sends the growth of this process's resumable answers to Redis, in one pipeline per flush."""

    def __init__(self, redis: Redis, *, retention_s: float, max_stream_s: float, heartbeat_s: float) -> None:
        self._redis = redis
        self._hot_for_s = heartbeat_s * 2 + 1  # a follower says so once per heartbeat
        self._hot_until: dict[str, float] = {}
        self._urgent: set[str] = set()
        self._next_cold_flush = 0.0
        self._retention_s = retention_s
        self._retention_ms = int(retention_s * 1000)
        self._live_ms = int((max_stream_s + retention_s) * 1000)
        self._logs: dict[str, AnswerLog] = {}
        self._sent: dict[str, int] = {}  # the last sequence Redis holds, per answer
        self._dirty: set[str] = set()
        self._resend: set[str] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error_logged = 0.0

    def add(self, answer_log: AnswerLog) -> None:
        self._logs[answer_log.stream_id] = answer_log
        self._sent[answer_log.stream_id] = 0
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-mirror", daemon=True)
            self._thread.start()

    def mirrors(self, stream_id: str) -> bool:
        """True while this process's log of `stream_id` is mirrored (a resumable answer's)."""
        return stream_id in self._logs

    def changed(self, answer_log: AnswerLog) -> None:
        """Called per chunk appended (the per-token path): a set insertion, and a wake-up only for
        an answer that must go out soon (it ended, or a reader elsewhere follows it)."""
        stream_id = answer_log.stream_id
        self._dirty.add(stream_id)
        if answer_log.ended_at is not None or stream_id in self._hot_until:
            self._urgent.add(stream_id)
            self._wake.set()

    def followed(self, stream_id: str) -> None:
        """A reader in another process follows `stream_id`: send it at once, and often."""
        if stream_id in self._logs:
            self._hot_until[stream_id] = time.monotonic() + self._hot_for_s
            self._dirty.add(stream_id)
            self._urgent.add(stream_id)
            self._wake.set()

    def resend_all(self) -> None:
        """Redis may have lost everything (a restart without persistence): send every log whole."""
        self._resend |= set(self._logs)
        self._dirty |= set(self._logs)
        self._urgent |= set(self._logs)
        self._wake.set()

    def _run(self) -> None:
        while True:
            # Sleep until an answer must go out now, or the next cold flush if any is waiting.
            cold_in = max(self._next_cold_flush - time.monotonic(), 0) if self._dirty else COLD_FLUSH_S
            self._wake.wait(cold_in)
            self._wake.clear()
            time.sleep(HOT_FLUSH_S)  # gather what the other answers append meanwhile
            try:
                self.flush(self._due(time.monotonic()))
            except RedisError as exc:
                self._failed(exc)
                time.sleep(0.5)
                self._wake.set()  # they are sent again whole

    def _due(self, now: float) -> set[str]:
        """The answers to send now: all of them every COLD_FLUSH_S, else the urgent ones (ended,
        or followed elsewhere)."""
        for stream_id, until in list(self._hot_until.items()):
            if until <= now:
                del self._hot_until[stream_id]
            elif stream_id in self._dirty:
                self._urgent.add(stream_id)
        if now >= self._next_cold_flush:
            self._next_cold_flush = now + COLD_FLUSH_S
            due = set(self._dirty)
        else:
            due = self._urgent & self._dirty
        self._urgent -= due
        return due

    def flush(self, due: set[str] | None = None) -> None:
        self._forget_expired()
        dirty = self._dirty if due is None else due
        self._dirty -= dirty
        pipe = self._redis.pipeline(transaction=False)
        sent: list[tuple[str, int, bool]] = []
        for stream_id in dirty:
            answer_log = self._logs.get(stream_id)
            if answer_log is None:
                continue
            ended = answer_log.ended  # read first: every chunk is in before the end is marked
            resend = stream_id in self._resend
            position = 0 if resend else self._sent[stream_id]
            key = log_key(stream_id)
            if resend:
                pipe.delete(key)
            chunks = answer_log.chunks[answer_log.first_index_after(position) :]
            if chunks:
                entry: dict[str | bytes, bytes | int] = {
                    "f": max(chunks[0].first, position + 1),
                    "d": data_after(chunks, position),
                    "e": int(ended),
                }
                pipe.xadd(key, entry, id=f"{chunks[-1].last}-0", maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
            elif ended:
                pipe.xadd(key, {"f": position + 1, "d": b"", "e": 1}, id=f"{position}-1")
            if ended:
                pipe.pexpire(key, self._retention_ms)
            elif position == 0:  # the first entry: a log whose process dies expires anyway
                pipe.pexpire(key, self._live_ms)
            sent.append((stream_id, chunks[-1].last if chunks else position, ended))
        try:
            pipe.execute()
        except RedisError:
            self._dirty |= dirty
            self._urgent |= dirty
            self._resend |= set(self._logs)
            raise
        for stream_id, last, ended in sent:
            self._resend.discard(stream_id)
            self._sent[stream_id] = last
            if ended:
                del self._logs[stream_id], self._sent[stream_id]
                self._hot_until.pop(stream_id, None)

    def _forget_expired(self) -> None:
        """Answers that ended longer than the retention ago need no sharing any more, even if Redis
        was away all that time: without this, an outage would keep every answer in memory."""
        now = time.monotonic()
        for stream_id, answer_log in list(self._logs.items()):
            if answer_log.ended_at is not None and now - answer_log.ended_at > self._retention_s:
                del self._logs[stream_id], self._sent[stream_id]
                self._hot_until.pop(stream_id, None)
                self._dirty.discard(stream_id)
                self._urgent.discard(stream_id)
                self._resend.discard(stream_id)

    def _failed(self, exc: RedisError) -> None:
        now = time.monotonic()
        if now - self._last_error_logged > 10:
            self._last_error_logged = now
            log.error("could not share answer logs through Redis (readers elsewhere wait): %s", exc)


class RedisFollow:
    """A reader of an answer that another process generates: what Redis holds after a position,
    then each new entry as XREAD BLOCK returns it, until the entry that ends the answer."""

    def __init__(
        self,
        redis: Redis,
        blocking: Redis,
        stream_id: str,
        entries: list[tuple[bytes, dict[bytes, bytes]]],
        position: int,
        heartbeat_s: float,
    ) -> None:
        self._redis = redis
        self._blocking = blocking
        self.stream_id = stream_id
        self._first = entries
        self._position = position
        self._last_id = f"{position}-0"
        self._heartbeat_s = heartbeat_s

    @classmethod
    def open(
        cls, redis: Redis, blocking: Redis, stream_id: str, position: int, heartbeat_s: float
    ) -> RedisFollow | None:
        """None when Redis has no such answer, or no longer holds the events right after `position`."""
        pipe = redis.pipeline(transaction=False)
        pipe.xrange(log_key(stream_id), min=f"({position}-0", max="+")
        pipe.get(running_key(stream_id))
        entries, state = pipe.execute()
        if not entries:
            # Running, stopping, or just ended: its entries are at most one flush away.
            resumable = state in (b"r", b"xr", b"e")
            return cls(redis, blocking, stream_id, [], position, heartbeat_s) if resumable else None
        if int(entries[0][1][b"f"]) > position + 1:
            return None  # trimmed, or lost with a Redis restart: the stored message is the truth
        return cls(redis, blocking, stream_id, entries, position, heartbeat_s)

    def frames(self) -> Iterator[bytes]:
        key = log_key(self.stream_id)
        entries = self._first
        self._first = []
        reading_due = 0.0
        try:
            while True:
                if entries:
                    data, ended = self._take(entries)
                    if data:
                        yield data
                    if ended:
                        return
                now = time.monotonic()
                if now >= reading_due:
                    self._announce()
                    reading_due = now + self._heartbeat_s
                entries = self._read(key, self._heartbeat_s)
                if not entries:
                    if not self._redis.exists(running_key(self.stream_id)):
                        # Ended just now (its last entry may be one flush behind), or its process died.
                        entries = self._read(key, COLD_FLUSH_S)
                        if not entries:
                            return
                        continue
                    yield KEEP_ALIVE
        except RedisError as exc:
            # The reader's connection ends; the page reattaches (through this or another process).
            log.error("stream %s: lost Redis while following it: %s", self.stream_id, exc)

    def _announce(self) -> None:
        """Tell the answer's process that it is read here (for CHATAPP_DETACHED_MAX_S), and to
        send it often while it is (LogMirror.followed)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(reading_key(self.stream_id), 1, ex=max(int(self._heartbeat_s * 3), 1))
        pipe.publish(FOLLOW_CHANNEL, self.stream_id)
        pipe.execute()

    def _read(self, key: str, wait_s: float) -> list[tuple[bytes, dict[bytes, bytes]]]:
        found: Any = self._blocking.xread({key: self._last_id}, block=max(int(wait_s * 1000), 1))
        return cast("list[tuple[bytes, dict[bytes, bytes]]]", found[0][1]) if found else []

    def _take(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> tuple[bytes, bool]:
        out: list[bytes] = []
        ended = False
        for entry_id, fields in entries:
            self._last_id = entry_id.decode()
            first, data = int(fields[b"f"]), fields[b"d"]
            out.append(data if first > self._position else frames_after(data, self._position))
            self._position = max(self._position, int(self._last_id.split("-", 1)[0]))
            ended = ended or fields[b"e"] == b"1"
        return b"".join(out), ended
