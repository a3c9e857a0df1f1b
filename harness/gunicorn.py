"""chatapp under a real `python -m gunicorn -c gunicorn.conf.py wsgi:app`, as production runs it.

On a free port of 127.0.0.1, ready when `/healthz` answers, with the developer's own chatapp,
OpenAI and gunicorn variables taken out of its environment so that only what the caller passes
decides what the app does. Unless the caller names a `DATABASE_URL`, its conversations go to a
SQLite file of its own (kept across its restarts, removed with it), never to the repository's
instance/ folder that every server, test run and `scripts/serve` would otherwise share.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import weakref
from pathlib import Path

from harness.processes import ServerProcess, free_port, http_ok

# Variables of the developer's shell that would change what the app under test does.
_SCRUBBED = ("OPENAI_", "CHATAPP_", "WEB_CONCURRENCY", "PORT", "GUNICORN_", "DATABASE_URL")


class GunicornServer(ServerProcess):
    name = "gunicorn"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        workers: int | None = 1,
        args: list[str] | None = None,
        port: int | None = None,
        cwd: Path | None = None,
    ) -> None:
        """`workers=None` keeps gunicorn.conf.py's default (one per core); `args` replace
        `-c gunicorn.conf.py wsgi:app` (the benchmark runs its reference app so, binding `port`);
        `cwd`: another checkout of chatapp to run (the benchmark's A/B against an older revision)."""
        self.args = args or ["-c", "gunicorn.conf.py", "wsgi:app"]
        self.port = port or free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        environ["CHATAPP_BIND"] = f"127.0.0.1:{self.port}"
        if workers is not None:
            environ["WEB_CONCURRENCY"] = str(workers)
        environ.update(env or {})
        if "DATABASE_URL" not in environ:
            folder = tempfile.mkdtemp(prefix="chatapp-gunicorn-")
            weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
            environ["DATABASE_URL"] = f"sqlite:///{folder}/chatapp.sqlite3"
        argv = [sys.executable, "-m", "gunicorn", *self.args]
        if cwd is None:
            super().__init__(argv, http_ok(f"{self.url}/healthz"), env=environ)
        else:
            super().__init__(argv, http_ok(f"{self.url}/healthz"), env=environ, cwd=cwd)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The master's children: its workers, as they are now (a killed worker's successor included)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        return [int(pid) for pid in children.split()]
