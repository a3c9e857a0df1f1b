"""What the worker processes of chatapp share: which streams run, stopping them, per-client caps,
and the answer logs that reattaching readers follow from another process.

- `LocalCoordinator`: one process (gunicorn runs one worker when no Redis is configured,
  see gunicorn.conf.py): the registry of this process is the whole truth, so it shares nothing.
- `RedisCoordinator` (`CHATAPP_REDIS_URL`): several workers and machines share Redis: a key per
  running stream and pub/sub for stop, a sorted set per client for the stream cap, and a Redis
  Stream per resumable answer mirroring its log. Redis going away degrades to the local process
  (streams in flight finish, errors are logged); it never fails a request with a 500.
"""

from __future__ import annotations

from ...config import Settings
from .base import Coordinator, SharedStateUnavailable
from .local import LocalCoordinator


def make_coordinator(settings: Settings) -> Coordinator:
    if settings.redis_url is None:
        return LocalCoordinator()
    from .redis_coordinator import RedisCoordinator

    return RedisCoordinator(
        settings.redis_url,
        retention_s=settings.stream_retention_s,
        max_stream_s=settings.max_stream_s,
        max_per_client=settings.max_streams_per_client,
        heartbeat_s=settings.heartbeat_s,
    )


__all__ = ["Coordinator", "LocalCoordinator", "SharedStateUnavailable", "make_coordinator"]
