"""Workers and machines sharing one Redis (`CHATAPP_REDIS_URL`).

- Running streams: `chatapp:running:<id>` (`r` resumable, `s` not), a lease that this process
  renews while the stream runs, so that a killed worker's streams are forgotten within `LEASE_S`.
- Stop: the stop endpoint of any process runs one script that publishes the id on
  `chatapp:stop` if the stream runs anywhere (202) or answers that it does not (404); every
  process listens and cancels the stream if it is its own.
- Per-client cap: a sorted set per client address of its streams' leases, counted and added to
  by one script, so that two workers cannot both admit the last slot.
- Resumable answers' logs: `redis_log`; a reader in another process announces itself on
  `chatapp:follow`, which this process hears on the same connection as stops.

Every call is guarded: with Redis gone, streams of this process go on and finish, the failure is
logged (at most every 10 s per kind), admission falls back to this process's own count, and
what needs another process answers 503 (`SharedStateUnavailable`).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from ..admission import ClientBusy, Release
from ..answer_log import AnswerLog
from .base import SharedStateUnavailable
from .redis_log import LogMirror, RedisFollow
from .redis_schema import (
    ADMIT_SCRIPT,
    FOLLOW_CHANNEL,
    STOP_CHANNEL,
    STOP_CHANNEL_BYTES,
    STOP_SCRIPT,
    client_key,
    connect,
    reading_key,
    running_key,
)

log = logging.getLogger(__name__)

# A running stream's key, and a client's stream in its cap, live this long unless renewed.
LEASE_S = 30
RENEW_EVERY_S = LEASE_S / 3
# How long the stop endpoint waits for the stream's process to take a stop, and resends it meanwhile.
STOP_ACK_S = 2.0
STOP_RESEND_S = 0.25
# How long an ended answer's key says so (its log's last entry is one flush away at most).
ENDED_KEY_S = 10
# Connections for commands per process (blocking reads have their own).
COMMAND_CONNECTIONS = 16


class RedisCoordinator:
    def __init__(
        self, url: str, *, retention_s: float, max_stream_s: float, max_per_client: int, heartbeat_s: float
    ) -> None:
        # Commands answer within milliseconds; a dead server is noticed within seconds. A bounded
        # pool: a burst of streams shares a few connections (greenlets wait their turn) instead of
        # opening one each.
        self._redis = connect(url, socket_timeout=5, max_connections=COMMAND_CONNECTIONS)
        # XREAD BLOCK holds its connection up to a heartbeat: one per reader in another process.
        self._blocking = connect(url, socket_timeout=heartbeat_s + 5)
        self._url = url
        self._stop = self._redis.register_script(STOP_SCRIPT)
        self._admit = self._redis.register_script(ADMIT_SCRIPT)
        self._max_per_client = max_per_client
        self._mirror = LogMirror(
            self._redis, retention_s=retention_s, max_stream_s=max_stream_s, heartbeat_s=heartbeat_s
        )
        self._running: dict[str, bytes] = {}
        self._leases: dict[str, str] = {}  # cap member -> client key
        self._listening: threading.Thread | None = None
        self._renewing: threading.Thread | None = None
        self._errors_logged: dict[str, float] = {}

    # -- stop ---------------------------------------------------------------------------

    def listen(self, on_stop: Callable[[str], bool]) -> None:
        if self._listening is not None:
            return
        subscribed = threading.Event()
        self._listening = threading.Thread(
            target=self._listen, args=(on_stop, subscribed), name="stop-listener", daemon=True
        )
        self._listening.start()
        # A stop published before this process subscribed would be lost: wait briefly for it.
        subscribed.wait(2)

    def _listen(self, on_stop: Callable[[str], bool], subscribed: threading.Event) -> None:
        backoff = 0.1
        reconnecting = False
        while True:
            # No socket timeout: it waits for the next message; a server that went away is an error.
            client = connect(self._url, socket_timeout=None, health_check_interval=30)
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(STOP_CHANNEL, FOLLOW_CHANNEL)
                if reconnecting:
                    # Redis went away, and may have come back empty (no persistence): put back
                    # what this process runs and the answers it logs, at once.
                    self._restore()
                subscribed.set()
                backoff = 0.1
                for message in pubsub.listen():
                    if message["type"] == "message":
                        self._heard(message, on_stop)
            except RedisError as exc:
                self._failed("listen for stops", exc)
            except Exception:  # never let one surprise end this process's hearing of stops
                log.exception("the stop listener failed; listening again")
            finally:
                pubsub.close()
                client.close()
            reconnecting = True
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _heard(self, message: dict[str, Any], on_stop: Callable[[str], bool]) -> None:
        """One message on a channel: a stop for a stream that may run here, or a reader elsewhere
        following an answer. A malformed one is logged and skipped; the listener goes on."""
        try:
            stream_id = message["data"].decode()
            if message["channel"] == STOP_CHANNEL_BYTES:
                if on_stop(stream_id):
                    self._acknowledge_stop(stream_id)
            else:
                self._mirror.followed(stream_id)
        except Exception:
            log.exception("could not act on %r", message)

    def _restore(self) -> None:
        self._renew_now(restore=True)
        self._mirror.resend_all()

    def _acknowledge_stop(self, stream_id: str) -> None:
        value = self._running.get(stream_id)
        if value is None or value.startswith(b"x"):
            return
        self._running[stream_id] = b"x" + value
        try:
            self._redis.set(running_key(stream_id), self._running[stream_id], ex=LEASE_S)
        except RedisError as exc:
            self._failed("acknowledge a stop", exc)

    def stop_elsewhere(self, stream_id: str) -> bool:
        """Publish the stop, then wait until the process that runs the stream took it (its key
        says so): a stop that nobody received (that process is reconnecting to Redis) is sent
        again, and after STOP_ACK_S it is a 503 rather than a 202 that stopped nothing."""
        key = running_key(stream_id)
        try:
            found = self._stop(keys=[key], args=[STOP_CHANNEL, stream_id])
            if not found:
                return False
            deadline = time.monotonic() + STOP_ACK_S
            resend_at = time.monotonic() + STOP_RESEND_S
            pause = 0.002
            while found == 1:
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
                if self._redis.get(key) not in (b"r", b"s"):
                    return True  # taken (`x…`), ended, or gone
                now = time.monotonic()
                if now >= deadline:
                    raise SharedStateUnavailable
                if now >= resend_at:
                    resend_at = now + STOP_RESEND_S
                    found = self._stop(keys=[key], args=[STOP_CHANNEL, stream_id])
            return True
        except RedisError as exc:
            self._failed("stop", exc)
            raise SharedStateUnavailable from exc

    # -- what runs where ---------------------------------------------------------------

    def running(self, stream_id: str) -> None:
        # A resumable answer's log is mirrored before its stream starts (AnswerJobs.start).
        value = b"r" if self._mirror.mirrors(stream_id) else b"s"
        self._running[stream_id] = value
        self._start_renewing()
        try:
            self._redis.set(running_key(stream_id), value, ex=LEASE_S)
        except RedisError as exc:
            self._failed("register a stream", exc)

    def finished(self, stream_id: str) -> None:
        resumable = self._running.pop(stream_id, b"").endswith(b"r")  # `r`, or `xr` once stopped
        try:
            if resumable:
                # Its log's last entry reaches Redis with the mirror's next flush: until then a
                # reader elsewhere must wait for it rather than be told there is no such answer.
                self._redis.set(running_key(stream_id), b"e", ex=ENDED_KEY_S)
            else:
                self._redis.delete(running_key(stream_id))
        except RedisError as exc:
            self._failed("unregister a stream", exc)

    def admit(self, client: str) -> Release:
        if not self._max_per_client:
            return _nothing
        member = secrets.token_hex(8)
        key = client_key(client)
        now = time.time()
        try:
            admitted = self._admit(
                keys=[key], args=[now, now + LEASE_S, self._max_per_client, member, LEASE_S * 2]
            )
        except RedisError as exc:
            self._failed("count a client's streams", exc)
            return _nothing  # this process's own count still applies
        if not admitted:
            raise ClientBusy
        self._leases[member] = key
        self._start_renewing()

        def release() -> None:
            if self._leases.pop(member, None) is None:
                return
            try:
                self._redis.zrem(key, member)
            except RedisError as exc:
                self._failed("release a client's stream", exc)  # its lease runs out instead

        return release

    def _start_renewing(self) -> None:
        if self._renewing is None:
            self._renewing = threading.Thread(target=self._renew, name="lease-renewer", daemon=True)
            self._renewing.start()

    def _renew(self) -> None:
        """Keep the leases of what this process runs alive, so only a dead process's expire."""
        while True:
            time.sleep(RENEW_EVERY_S)
            self._renew_now()

    def _renew_now(self, *, restore: bool = False) -> None:
        """Renew every lease of this process; `restore`: also put back those Redis lost."""
        pipe = self._redis.pipeline(transaction=False)
        for stream_id, value in list(self._running.items()):
            pipe.set(running_key(stream_id), value, ex=LEASE_S)
        expires = time.time() + LEASE_S
        for member, key in list(self._leases.items()):
            pipe.zadd(key, {member: expires}, xx=not restore)
            pipe.expire(key, LEASE_S * 2)
        try:
            pipe.execute()
        except RedisError as exc:
            self._failed("renew leases", exc)

    # -- resumable answers --------------------------------------------------------------

    def mirror(self, answer_log: AnswerLog) -> None:
        self._mirror.add(answer_log)

    def changed(self, answer_log: AnswerLog) -> None:
        self._mirror.changed(answer_log)

    def follow(self, stream_id: str, position: int, heartbeat_s: float) -> RedisFollow | None:
        try:
            return RedisFollow.open(self._redis, self._blocking, stream_id, position, heartbeat_s)
        except RedisError as exc:
            self._failed("follow an answer", exc)
            raise SharedStateUnavailable from exc

    def read_elsewhere(self, stream_id: str) -> bool:
        try:
            return bool(self._redis.exists(reading_key(stream_id)))
        except RedisError as exc:
            self._failed("look for readers", exc)
            return True  # in doubt, keep the answer going

    def _failed(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._errors_logged.get(what, 0.0) > 10:
            self._errors_logged[what] = now
            log.error("Redis: could not %s: %s", what, exc)


def _nothing() -> None:
    pass
