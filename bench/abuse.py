"""Abuse soak: normal streams go on while thousands of connections from one address only wait.

chatapp under gunicorn (one gevent worker, chatapp's connection limits at their defaults) in
front of the bench upstream. Normal streams come from 127.0.0.2, `--concurrency` at a time
(100 tokens at 50 tokens/s each). After a baseline without abuse (a fifth of the run, at most
30 s), the three abusers of harness/abusers.py run together until the end, from 127.0.0.1 and
with `keep_open` (each connection the server closes is reopened): `--abusers` idle connections,
as many slowloris clients (headers at a byte a second) and as many POSTs whose announced body
never comes. Each kind runs in a process of its own, so that their thousands of sockets do not
hold the load client's interpreter lock and show up as its time to first token. Every 10 s it
samples the worker's CPU, resident memory, open file descriptors (and their range since the
previous sample), live streams and greenlets, and the abusers' counts.

It fails (exit status 1) when a normal stream did not end with `done` and all its tokens, when
the worker's memory or file descriptors grew under abuse beyond the margins below or did not
return to their idle counts afterwards, or when the worker was replaced.
Run: `python -m bench.abuse` (5 minutes; `--seconds 60` for a short one). Not in CI (a smoke
run is: tests/integration/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.abuse_report import IDLE_MARGIN, report, sample_line
from bench.abuser_processes import AbuserProcess, abuser_totals
from bench.client import CHATAPP_END, CHATAPP_TOKEN, StreamTiming, chat_request, open_stream
from bench.processes import BenchUpstream, chatapp_server, process_cpu_seconds, resident_bytes
from harness.abusers import KINDS

NORMAL_CLIENT = "127.0.0.2"  # another address than the abusers' 127.0.0.1: another client
NORMAL_MODEL = "bench-ttft50-tps50-len100"
NORMAL_TOKENS = 100
STREAM_TIMEOUT_S = 60.0  # a normal stream not over by then is lost
SAMPLE_EVERY_S = 10.0
FD_POLL_S = 0.5


@dataclass(frozen=True)
class Outcome:
    """One normal stream: the phase it started in, its time to first token (from before the
    connect, so that a wait in the listen queue counts), and why it was lost, if it was."""

    phase: str
    ttft_s: float | None
    lost: str | None


def why_lost(timing: StreamTiming) -> str | None:
    if timing.status != 200:
        return f"status {timing.status}"
    if timing.error:
        return timing.error
    if not timing.complete:
        return "no done event"
    if len(timing.token_times) != NORMAL_TOKENS:
        return f"{len(timing.token_times)} tokens"
    return None


async def normal_stream(port: int, phase: str, outcomes: list[Outcome]) -> None:
    body = {"messages": [{"role": "user", "content": f"abuse {time.monotonic_ns()}"}], "model": NORMAL_MODEL}
    request = chat_request("127.0.0.1", port, "/api/chat", body)
    started = time.monotonic()
    stream = None
    try:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            stream = await open_stream("127.0.0.1", port, request, CHATAPP_TOKEN, CHATAPP_END, NORMAL_CLIENT)
            timing = await stream.finished
    except (OSError, TimeoutError) as exc:
        if stream is not None:
            stream.abort()
        outcomes.append(Outcome(phase, None, type(exc).__name__))
        return
    ttft = timing.token_times[0] - started if timing.token_times else None
    outcomes.append(Outcome(phase, ttft, why_lost(timing)))


# -- the run -------------------------------------------------------------------------------------


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def debug_stats(port: int) -> dict[str, Any]:
    """The worker's live streams and greenlets, asked from the normal client's address (the
    abusers' one is at its cap: it would get 429); None for both when it does not answer in time."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(NORMAL_CLIENT, 0))
    try:
        conn.request("GET", "/debug/stats")
        stats = json.loads(conn.getresponse().read())
        return {"streams": stats["streams"], "greenlets": stats["greenlets"]}
    except (OSError, ValueError, KeyError):
        return {"streams": None, "greenlets": None}
    finally:
        conn.close()


class Run:
    """One soak: normal traffic throughout, a baseline without abuse, then the abusers until the end."""

    def __init__(self, port: int, worker: int, upstream: int, args: argparse.Namespace) -> None:
        self.port, self.worker, self.upstream, self.args = port, worker, upstream, args
        self.phase = "baseline"
        self.started = time.monotonic()
        self.abuse_started: float | None = None
        self.abusers: list[AbuserProcess] = []
        self.outcomes: list[Outcome] = []
        self.samples: list[dict[str, Any]] = []
        self._fds: list[int] = []  # polled between two samples
        self._cpu = (time.monotonic(), process_cpu_seconds([worker]))
        self._cpu_at_abuse: tuple[float, dict[str, float]] = (0.0, {})

    async def sample(self, label: str | None = None) -> dict[str, Any]:
        stats = await asyncio.to_thread(debug_stats, self.port)
        now, cpu, fds = time.monotonic(), process_cpu_seconds([self.worker]), open_fds(self.worker)
        window, self._fds = [*self._fds, fds], []
        sample = {
            "t": round(now - self.started, 1),
            "phase": label or self.phase,
            "into_abuse_s": None if self.abuse_started is None else round(now - self.abuse_started, 1),
            # The worker's share of one core since the previous sample (its one thread serves all).
            "cpu_pct": round((cpu - self._cpu[1]) / (now - self._cpu[0]) * 100),
            "rss_mib": round(resident_bytes([self.worker]) / 2**20, 1),
            "fds": fds,
            "fds_low": min(window),
            "fds_high": max(window),
            **stats,
        }
        if self.abusers:
            sample["abusers"] = await asyncio.to_thread(abuser_totals, self.abusers)
        self._cpu = (now, cpu)
        self.samples.append(sample)
        print(sample_line(sample), flush=True)
        return sample

    async def sampler(self) -> None:
        next_sample = time.monotonic() + SAMPLE_EVERY_S
        while True:
            await asyncio.sleep(FD_POLL_S)
            self._fds.append(open_fds(self.worker))
            if time.monotonic() >= next_sample:
                await self.sample()
                next_sample += SAMPLE_EVERY_S

    async def traffic(self, until: float) -> None:
        running: set[asyncio.Task[None]] = set()
        while time.monotonic() < until:
            while len(running) < self.args.concurrency:
                task = asyncio.ensure_future(normal_stream(self.port, self.phase, self.outcomes))
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.sleep(0.02)
        await asyncio.gather(*running)

    async def start_abuse(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.abusers = [AbuserProcess(self.port, kind, self.args.abusers) for kind in KINDS]
        self.abuse_started = time.monotonic()
        self.phase = "abuse"
        self._cpu_at_abuse = (self.abuse_started, self.cpu_seconds())

    def cpu_seconds(self) -> dict[str, float]:
        pids = {
            "worker": [self.worker],
            "abusers": [a.pid for a in self.abusers],
            "upstream": [self.upstream],
            "load client": [os.getpid()],
        }
        return {name: process_cpu_seconds(p) for name, p in pids.items()}

    def cpu_under_abuse(self) -> dict[str, int]:
        """Each process's share of one core since the abusers started, in percent."""
        started, before = self._cpu_at_abuse
        now, elapsed = self.cpu_seconds(), time.monotonic() - started
        return {name: round((now[name] - before[name]) / elapsed * 100) for name in now}

    async def settle(self, before: dict[str, Any], timeout: float = 30.0) -> None:
        """Wait, up to a deadline, for the worker to close what the abusers and streams left (the
        greenlets of closed connections end a few seconds after their sockets)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = {"fds": open_fds(self.worker), **await asyncio.to_thread(debug_stats, self.port)}
            if all((now[k] or 0) <= before[k] + IDLE_MARGIN for k in ("fds", "greenlets")):
                return
            await asyncio.sleep(0.5)

    async def run(self) -> dict[str, Any]:
        for _ in range(3):  # warm-up: the SDK client and its pool exist before the idle sample
            await normal_stream(self.port, "warm-up", self.outcomes)
        idle_before = await self.sample("idle, before")
        self.started = time.monotonic()
        baseline_s = min(30.0, self.args.seconds / 5)
        sampler = asyncio.ensure_future(self.sampler())
        starter = asyncio.ensure_future(self.start_abuse(baseline_s))
        await self.traffic(until=self.started + self.args.seconds)
        await starter
        sampler.cancel()
        cpu = self.cpu_under_abuse()
        await self.sample("abusers only")
        abusers = {a.kind: await asyncio.to_thread(a.stop) for a in self.abusers}
        self.abusers = []
        await self.settle(idle_before)
        await self.sample("idle, after")
        return {"baseline_s": baseline_s, "abusers": abusers, "cpu_pct": cpu}


def listen_overflows() -> int:
    """Connections the kernel dropped at a full listen queue (their SYN unanswered, which the
    client sends again after 1 s), for this network namespace since boot (/proc/net/netstat)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


def raise_fd_limit(wanted: int) -> None:
    """Room for every abuser's socket (the children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(f"needs {wanted} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300, help="the whole run, baseline included")
    parser.add_argument("--abusers", type=int, default=2000, help="connections of each abusive kind")
    parser.add_argument("--concurrency", type=int, default=30, help="normal streams at a time")
    parser.add_argument("--json", type=Path, default=Path("bench/results/abuse.json"))
    args = parser.parse_args()

    raise_fd_limit(args.abusers + 1000)
    overflows = listen_overflows()
    with BenchUpstream() as upstream, chatapp_server(upstream, workers=1, CHATAPP_DEBUG_STATS="1") as app:
        assert upstream.process is not None
        (worker,) = app.worker_pids()
        run = Run(app.port, worker, upstream.process.pid, args)
        result = asyncio.run(run.run())
        replaced = app.worker_pids() != [worker]
        tracebacks = app.output().count("Traceback")
    overflows = listen_overflows() - overflows

    n, baseline_s = args.abusers, result["baseline_s"]
    heading = (
        f"Abuse soak: {args.seconds:.0f} s: {baseline_s:.0f} s baseline, then "
        f"{args.seconds - baseline_s:.0f} s with {n} idle, {n} slowloris and {n} body-less connections "
        f"from 127.0.0.1 together, kept open; normal streams from {NORMAL_CLIENT}, "
        f"{args.concurrency} at a time ({NORMAL_TOKENS} tokens at 50 tokens/s)"
    )
    lines, failures = report(heading, result, run.outcomes, run.samples)
    lines.append(f"connections dropped at a full listen queue (the whole host's): {overflows}")
    lines.append(
        f"tracebacks in the server log: {tracebacks}; worker replaced: {'yes' if replaced else 'no'}"
    )
    if replaced:
        failures.append("the worker was replaced (its figures are not one process's)")
    lines.append("FAIL: " + "; ".join(failures) if failures else "PASS")
    print("\n" + "\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    outcomes = [asdict(o) for o in run.outcomes]
    args.json.write_text(json.dumps({**result, "samples": run.samples, "outcomes": outcomes}, indent=1))
    print(f"written: {args.json}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
