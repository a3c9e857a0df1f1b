"""Spawn a server process and wait until it answers; stop it, and everything it started, afterwards.

After gunicorn's own tests/test_signal_integration.py: the process runs in a session (and so a
process group) of its own on a port chosen free at run time, its output goes to a file that is
shown when it fails to start or exits early, readiness is a probe polled until a deadline (an
HTTP GET that answers 200, a TCP connect, or any callable), and it is stopped by SIGTERM to the
whole group, then SIGKILL when it does not exit in time.

Tests run in parallel (pytest-xdist), so a free port is drawn where nothing else draws from: below
the kernel's ephemeral range, in a slice of its own per worker process.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]

Probe = Callable[[], bool]


class StartupError(RuntimeError):
    """A server process exited, or did not answer, before its deadline; the message holds its output."""


# Ports below this are left to the system's own services.
_LOWEST_PORT = 10_000
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to now (the caller binds it soon after).

    Not one the kernel would pick itself: outgoing connections and `bind(0)` take their ports from
    its ephemeral range, thousands a second in the abuse tests, and one could take this port in the
    second a server needs to start and bind it. Below that range, each pytest-xdist worker draws from
    a slice of its own, so that two workers never pick the same port, and this process never hands
    out the same port twice (a stopped server may come back on its port)."""
    low, high = _port_slice()
    for _ in range(100):
        port = random.randrange(low, high)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket() as s:  # a slice that full is not expected: let the kernel choose
        s.bind(("127.0.0.1", 0))
        chosen: int = s.getsockname()[1]
        return chosen


def _port_slice() -> tuple[int, int]:
    """This process's range of ports: [low, high)."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux's default
    low, high = _LOWEST_PORT, max(ephemeral_low, _LOWEST_PORT + 1000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and worker[2:].isdigit() and workers > 1:
        size = (high - low) // workers
        low += int(worker[2:]) * size
        high = low + size
    return low, high


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_ok(url: str) -> Probe:
    """Ready when a GET of `url` answers 200."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                status: int = response.status
                return status == 200
        except OSError:
            return False

    return probe


def tcp_open(port: int, host: str = "127.0.0.1") -> Probe:
    """Ready when a TCP connection to `host:port` is accepted."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return probe


class ServerProcess:
    """One server subprocess: `start()` returns once `ready()` is true, `stop()` ends its process group.

    Also a context manager. The output file outlives `stop()`, so `output()` can be read after
    the process ended; it is removed when this object is collected.
    """

    name = "server"

    def __init__(
        self,
        argv: Sequence[str],
        ready: Probe,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
        name: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.ready = ready
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.name = name or self.name
        log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log", delete=False)  # noqa: SIM115
        log.close()
        self.log_path = Path(log.name)
        weakref.finalize(self, self.log_path.unlink, missing_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Self:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartupError(
                    f"{self.name} exited with {self.process.returncode} before it answered:\n{self.output()}"
                )
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise StartupError(f"{self.name} did not answer within {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after `timeout` seconds; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):  # it exited between the check and the signal
            os.killpg(self.process.pid, signum)

    def output(self) -> str:
        """What the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
