"""A real redis-server on 127.0.0.1 and a free port, writing nothing to disk; ready when it answers PING."""

from __future__ import annotations

import shutil
import socket

from harness.processes import ServerProcess, free_port


class RedisServer(ServerProcess):
    name = "redis-server"

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: scripts/test installs Debian's redis-server")
        self.port = free_port()
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        super().__init__(argv, self._answers_ping)

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers_ping(self) -> bool:
        # An accepted connection is not yet a served command (Redis answers -LOADING while it loads).
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False
