"""The processes a benchmark run needs (the bench upstream, chatapp and the bare reference relay under
gunicorn, all on harness/), and what they cost: CPU and resident memory read from /proc."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.gunicorn import GunicornServer
from harness.processes import ServerProcess, free_port, http_ok

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchUpstream(ServerProcess):
    """`python -m bench.upstream` on a free port, ready when `GET /stats` answers; a context manager."""

    name = "bench-upstream"

    def __init__(self) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "bench.upstream", "--port", str(self.port)]
        super().__init__(argv, http_ok(f"http://127.0.0.1:{self.port}/stats"))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@contextlib.contextmanager
def chatapp_server(
    upstream: BenchUpstream, workers: int | None = 1, cwd: Path | None = None, **env: str
) -> Iterator[GunicornServer]:
    """chatapp as deployed (`gunicorn -c gunicorn.conf.py wsgi:app`), pointed at the bench upstream;
    `cwd`: another checkout of chatapp to run instead of this one (bench.ab)."""
    settings = {
        "OPENAI_BASE_URL": upstream.base_url,
        "OPENAI_API_KEY": "bench",
        "CHATAPP_UPSTREAM_MAX_RETRIES": "0",
        "CHATAPP_LOG_LEVEL": "WARNING",
        # The load client is one address opening thousands of streams.
        "CHATAPP_MAX_STREAMS_PER_CLIENT": "0",
        "CHATAPP_RATE_LIMIT": "",
        **env,
    }
    with GunicornServer(settings, workers=workers, cwd=cwd) as server:
        yield server


@contextlib.contextmanager
def bare_relay_server(upstream: BenchUpstream, workers: int | None = 1) -> Iterator[GunicornServer]:
    """The reference relay (bench/bare_relay.py) under gunicorn's gevent worker, with the
    settings of gunicorn.conf.py that matter here (workers, worker_connections)."""
    count = workers or os.cpu_count() or 1
    port = free_port()
    bind = ["-b", f"127.0.0.1:{port}"]
    args = ["-c", "python:bench.bare_relay", *bind, "-w", str(count), "bench.bare_relay:app"]
    env = {"BARE_RELAY_UPSTREAM": f"127.0.0.1:{upstream.port}"}
    with GunicornServer(env, workers=None, args=args, port=port) as server:
        yield server


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


def process_cpu_seconds(pids: list[int]) -> float:
    """On-CPU time of the given processes, the threads that have already ended included, in 10 ms
    ticks: for runs of seconds whose processes start and end threads (a thread pool that shrinks),
    where `cpu_seconds` would lose the ended threads' time."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return total


def resident_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total
