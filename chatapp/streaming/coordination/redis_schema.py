"""What chatapp keeps in Redis, in one place: the key names, the pub/sub channels, the values of a
running stream's key, the two Lua scripts that must run atomically, and how a connection is made.

- `chatapp:running:<id>`: a stream that runs somewhere (see the scripts for its values).
- `chatapp:client:<address>`: a sorted set of a client's streams' leases (the per-client cap).
- `chatapp:log:<id>`: a resumable answer's log, a Redis Stream (redis_log.py).
- `chatapp:reading:<id>`: a reader in some process follows that answer (CHATAPP_DETACHED_MAX_S).
- `chatapp:stop`, `chatapp:follow`: the channels every process listens to.
"""

from __future__ import annotations

from typing import Any

import redis

STOP_CHANNEL = "chatapp:stop"
STOP_CHANNEL_BYTES = STOP_CHANNEL.encode()
FOLLOW_CHANNEL = "chatapp:follow"


def log_key(stream_id: str) -> str:
    return f"chatapp:log:{stream_id}"


def running_key(stream_id: str) -> str:
    return f"chatapp:running:{stream_id}"


def reading_key(stream_id: str) -> str:
    return f"chatapp:reading:{stream_id}"


# A running stream's key holds `r` (resumable) or `s`; `xr`/`xs` once its process took a stop
# (the acknowledgement the stop endpoint waits for); `e` when a resumable answer ended and its
# log's last entry may still be on its way to Redis.
STOP_SCRIPT = """
local state = redis.call('get', KEYS[1])
if state == 'r' or state == 's' then
  redis.call('publish', ARGV[1], ARGV[2])
  return 1
end
if state == 'xr' or state == 'xs' then
  return 2
end
return 0
"""

ADMIT_SCRIPT = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('zadd', KEYS[1], ARGV[2], ARGV[4])
redis.call('expire', KEYS[1], ARGV[5])
return 1
"""


def connect(url: str, *, max_connections: int | None = None, **options: Any) -> redis.Redis:
    # RESP2 and no CLIENT SETINFO (driver_info=None; redis-py 8 deprecates lib_name/lib_version):
    # a new connection is ready after the TCP handshake, with no HELLO and two SETINFO round trips.
    bounded = {"max_connections": max_connections, "timeout": 5} if max_connections else {}
    pool_class = redis.BlockingConnectionPool if max_connections else redis.ConnectionPool
    pool = pool_class.from_url(
        url,
        **bounded,
        socket_connect_timeout=2,
        protocol=2,
        driver_info=None,
        **options,
    )
    return redis.Redis(connection_pool=pool)


def client_key(client: str) -> str:
    return f"chatapp:client:{client}"
