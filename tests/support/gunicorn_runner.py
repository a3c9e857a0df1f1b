"""Run chatapp under a real `python -m gunicorn -c gunicorn.conf.py wsgi:app`, as production does.

After gunicorn's own tests/test_signal_integration.py: a subprocess in its own
process group on a free port, started and waited on until `/healthz` answers,
stopped by SIGTERM and then SIGKILL; its output is kept in a file and shown
when start-up fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Variables of the developer's shell that would change what the app under test does.
_SCRUBBED = ("OPENAI_", "CHATAPP_", "WEB_CONCURRENCY", "PORT", "GUNICORN_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GunicornServer:
    def __init__(
        self, env: dict[str, str] | None = None, workers: int | None = 1, args: list[str] | None = None
    ) -> None:
        """`workers=None` keeps gunicorn.conf.py's default (one per core); `args` replace
        `-c gunicorn.conf.py wsgi:app` (the benchmark runs its reference app so)."""
        self.args = args or ["-c", "gunicorn.conf.py", "wsgi:app"]
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        self.env["CHATAPP_BIND"] = f"127.0.0.1:{self.port}"
        if workers is not None:
            self.env["WEB_CONCURRENCY"] = str(workers)
        self.env.update(env or {})
        self._log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> GunicornServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.output()}")

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        return [int(pid) for pid in children.split()]
