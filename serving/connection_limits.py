"""The limits a worker puts on connections that have not started a response yet.

gunicorn holds a connection for as long as its client likes until the request's headers are in,
and the application reads the body with no timeout at all; `worker_connections` per worker is the
whole capacity. A few thousand idle, slow (slowloris) or body-less connections from one address
took it all. These bound what such a client can hold. gunicorn.conf.py reads them from the
environment and refuses to start on a bad value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    # A new connection must have sent its request line and headers within this.
    header_timeout_s: float = 10.0
    # A request body may pause this long between bytes; then 408 and the connection closes.
    body_idle_s: float = 5.0
    # The whole body must be in within this after the headers (a slow drip gets 408 too).
    body_timeout_s: float = 60.0
    # Connections one client address may hold that are waiting (for a request, its headers or its
    # body) rather than being answered; 0: no cap. Behind a proxy every connection comes from the
    # proxy, so there the proxy limits its clients instead (gunicorn.conf.py's default is 0).
    max_waiting_per_client: int = 32

    def __post_init__(self) -> None:
        if self.body_idle_s > self.body_timeout_s:
            raise ValueError(
                f"CHATAPP_BODY_IDLE_S ({self.body_idle_s:g}) cannot be longer than "
                f"CHATAPP_BODY_TIMEOUT_S ({self.body_timeout_s:g})"
            )
