"""The processes a benchmark run needs: the bench upstream and chatapp under gunicorn."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.support.gunicorn_runner import GunicornServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchUpstream:
    """`python -m bench.upstream` on a free port, for the length of a `with` block."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> BenchUpstream:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.upstream", "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=1).close()
                return self
            time.sleep(0.05)
        raise RuntimeError("the bench upstream did not start")

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextlib.contextmanager
def chatapp_server(upstream: BenchUpstream, workers: int | None = 1, **env: str) -> Iterator[GunicornServer]:
    """chatapp as deployed (`gunicorn -c gunicorn.conf.py wsgi:app`), pointed at the bench upstream."""
    server = GunicornServer(
        {
            "OPENAI_BASE_URL": upstream.base_url,
            "OPENAI_API_KEY": "bench",
            "CHATAPP_UPSTREAM_MAX_RETRIES": "0",
            "CHATAPP_LOG_LEVEL": "WARNING",
            # The load client is one address opening thousands of streams.
            "CHATAPP_MAX_STREAMS_PER_CLIENT": "0",
            "CHATAPP_RATE_LIMIT": "",
            **env,
        },
        workers=workers,
    ).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def bare_relay_server(upstream: BenchUpstream, workers: int | None = 1) -> Iterator[GunicornServer]:
    """The reference relay (bench/bare_relay.py) under gunicorn's gevent worker, with the
    settings of gunicorn.conf.py that matter here (workers, worker_connections)."""
    count = workers or os.cpu_count() or 1
    args = ["-c", "python:bench.bare_relay", "-w", str(count), "bench.bare_relay:app"]
    server = GunicornServer({"BARE_RELAY_UPSTREAM": f"127.0.0.1:{upstream.port}"}, workers=None, args=args)
    server.args[:0] = ["-b", f"127.0.0.1:{server.port}"]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cpu_seconds(pids: list[int]) -> float:
    """On-CPU time (user plus system) of the given processes and their threads, in seconds.

    From the scheduler's nanosecond count (/proc/<pid>/task/<tid>/schedstat) where the kernel
    has it: /proc/<pid>/stat counts in 10 ms ticks, which rounds a small run to nothing. A thread
    that ends between two readings takes its time with it; gunicorn's gevent workers keep theirs
    (the resolver's thread pool).
    """
    total = 0.0
    for pid in pids:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        if not (tasks[0] / "schedstat").exists():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
            continue
        for task in tasks:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread that just ended
                total += int((task / "schedstat").read_text().split()[0]) / 1e9
    return total


def resident_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total
