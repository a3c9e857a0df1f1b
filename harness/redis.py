"""A real redis-server on 127.0.0.1 and a free port, writing nothing to disk unless asked; ready
when it answers PING.

`stop()` then `start()` (or `restart()`) brings it back on the same port, as an operator's restart
does: clients see their connections drop, then the same address answer again. It comes back empty,
as a server without persistence does, unless `restart(keep_data=True)`, which first writes a
snapshot (SAVE) into its own temporary folder that the new process loads.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import weakref
from pathlib import Path
from typing import Self

from harness.processes import ServerProcess, free_port

DUMP_FILE = "dump.rdb"


class RedisServer(ServerProcess):
    name = "redis-server"

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: scripts/test installs Debian's redis-server")
        self.port = free_port()
        # Its own folder: an explicit SAVE writes there, never into the working directory.
        self.folder = Path(tempfile.mkdtemp(prefix="chatapp-redis-"))
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--dbfilename",
            DUMP_FILE,
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        super().__init__(argv, self._answers_ping)

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self, *, keep_data: bool = False, timeout: float = 30.0) -> Self:
        """Stop redis-server and start it again on the same port; with `keep_data` its keys
        survive (a snapshot is saved first and loaded at start), else it comes back empty."""
        if keep_data:
            reply = self._command(b"SAVE\r\n", timeout=10)
            if not reply.startswith(b"+OK"):
                raise RuntimeError(f"redis-server did not save its data: {reply!r}")
        self.stop()
        if not keep_data:
            (self.folder / DUMP_FILE).unlink(missing_ok=True)
        return self.start(timeout)

    def _command(self, command: bytes, timeout: float = 1.0) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(command)
            return s.recv(256)

    def _answers_ping(self) -> bool:
        # An accepted connection is not yet a served command (Redis answers -LOADING while it loads).
        try:
            return self._command(b"PING\r\n").startswith(b"+PONG")
        except OSError:
            return False
