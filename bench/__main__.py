"""The relay benchmark: `python -m bench` (under 3 minutes), or `python -m bench --smoke` (seconds).

For each N it opens N concurrent streams (20 tokens/s, 200 tokens each; starts
spread over a ramp so that all N are open together for a while), first straight
to the bench upstream (the direct path: the physical limit here), then through
the bare reference relay (bench/bare_relay.py: the least a relay under
gunicorn's gevent worker can do per token), then through chatapp under
`gunicorn -c gunicorn.conf.py wsgi:app`. It reports errors, time
to first token and inter-token gap (p50/p99, and what the relay adds), the
server's CPU per relayed token and resident memory per open stream (from
/proc), and the CPU of the upstream and of the load client, to show neither
is the bottleneck. A last case streams one answer at 1000 tokens/s.

Prints a table, writes JSON (default bench/results/bench.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.client import (
    CHATAPP_END,
    CHATAPP_TOKEN,
    UPSTREAM_END,
    UPSTREAM_TOKEN,
    StreamTiming,
    chat_request,
    open_stream,
)
from bench.processes import BenchUpstream, bare_relay_server, chatapp_server, cpu_seconds, resident_bytes
from bench.stats import percentile


@dataclass(frozen=True)
class Load:
    streams: int
    tokens_per_s: int = 20
    tokens: int = 200
    ramp_s: float = 5.0
    ttft_ms: int = 0

    @property
    def model(self) -> str:
        return f"bench-ttft{self.ttft_ms}-tps{self.tokens_per_s}-len{self.tokens}"


@dataclass
class Result:
    target: str
    streams: int
    errors: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    gap_p99_ms: float
    tokens: int
    tokens_per_s_per_stream: float
    server_cpu_us_per_token: float | None
    server_rss_kib_per_stream: float | None
    upstream_cpu_pct: float
    client_cpu_pct: float
    wall_s: float


class Target:
    """Where the load goes: the upstream itself, or chatapp in front of it."""

    def __init__(self, name: str, port: int, path: str, pids: list[int]) -> None:
        self.name = name
        self.port = port
        self.path = path
        self.pids = pids  # the server processes whose CPU and memory are measured
        direct = name == "direct"
        self.token_marker = UPSTREAM_TOKEN if direct else CHATAPP_TOKEN
        self.end_markers = UPSTREAM_END if direct else CHATAPP_END

    def request(self, load: Load, i: int) -> bytes:
        body = {"model": load.model, "messages": [{"role": "user", "content": f"stream {i}"}], "stream": True}
        return chat_request("127.0.0.1", self.port, self.path, body)


async def run_load(target: Target, load: Load, upstream_pid: int) -> Result:
    idle_rss = resident_bytes(target.pids) if target.pids else 0
    server_cpu0 = cpu_seconds(target.pids) if target.pids else 0.0
    upstream_cpu0 = cpu_seconds([upstream_pid])
    client_cpu0 = _own_cpu()
    started = time.monotonic()

    async def one(i: int) -> StreamTiming:
        await asyncio.sleep(i * load.ramp_s / load.streams)
        try:
            stream = await open_stream(
                "127.0.0.1", target.port, target.request(load, i), target.token_marker, target.end_markers
            )
        except OSError as exc:
            return StreamTiming(error=type(exc).__name__)
        return await stream.finished

    tasks = [asyncio.ensure_future(one(i)) for i in range(load.streams)]
    # All N are open together between the end of the ramp and the first stream's end.
    await asyncio.sleep(load.ramp_s + min(2.0, load.tokens / load.tokens_per_s / 2))
    peak_rss = resident_bytes(target.pids) if target.pids else 0
    timings = await asyncio.gather(*tasks)
    wall = time.monotonic() - started

    server_cpu = cpu_seconds(target.pids) - server_cpu0 if target.pids else None
    tokens = sum(len(t.token_times) for t in timings)
    errors = sum(1 for t in timings if t.error or not t.complete or t.status != 200)
    ttfts = [t.ttft for t in timings if t.ttft is not None]
    gaps = [g for t in timings for g in t.gaps()]
    rates = [
        (len(t.token_times) - 1) / (t.token_times[-1] - t.token_times[0])
        for t in timings
        if len(t.token_times) > 1 and t.token_times[-1] > t.token_times[0]
    ]
    return Result(
        target=target.name,
        streams=load.streams,
        errors=errors,
        ttft_p50_ms=percentile(ttfts, 50) * 1000,
        ttft_p99_ms=percentile(ttfts, 99) * 1000,
        gap_p99_ms=percentile(gaps, 99) * 1000,
        tokens=tokens,
        tokens_per_s_per_stream=sorted(rates)[len(rates) // 2] if rates else 0.0,
        server_cpu_us_per_token=server_cpu / tokens * 1e6 if server_cpu is not None and tokens else None,
        server_rss_kib_per_stream=(peak_rss - idle_rss) / load.streams / 1024 if target.pids else None,
        upstream_cpu_pct=(cpu_seconds([upstream_pid]) - upstream_cpu0) / wall * 100,
        client_cpu_pct=(_own_cpu() - client_cpu0) / wall * 100,
        wall_s=wall,
    )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def warm_up(target: Target) -> None:
    """A few streams first, so that lazily built things (the SDK client, its pool) exist."""
    load = Load(streams=5, tokens_per_s=200, tokens=20, ramp_s=0.1)
    await asyncio.gather(*(open_and_wait(target, load, i) for i in range(load.streams)))


async def open_and_wait(target: Target, load: Load, i: int) -> StreamTiming:
    stream = await open_stream(
        "127.0.0.1", target.port, target.request(load, i), target.token_marker, target.end_markers
    )
    return await stream.finished


REFERENCE_MAX_STREAMS = 1000


def run_all(loads: list[Load], fast: Load, workers: int | None) -> list[Result]:
    results: list[Result] = []
    with BenchUpstream() as upstream:
        assert upstream.process is not None
        direct = Target("direct", upstream.port, "/v1/chat/completions", [])
        with chatapp_server(upstream, workers=workers) as app, bare_relay_server(upstream, workers) as bare:
            assert app.process is not None
            assert bare.process is not None
            relay = Target("chatapp", app.port, "/api/chat", [app.process.pid, *app.worker_pids()])
            reference = Target("bare", bare.port, "/", [bare.process.pid, *bare.worker_pids()])
            for target in (direct, reference, relay):
                asyncio.run(warm_up(target))
            for load in [*loads, fast]:
                # Past N = 1000 (the N of the latency targets) the reference is as saturated as
                # chatapp; leaving it out keeps the run under 3 minutes.
                targets = (
                    (direct, relay) if load.streams > REFERENCE_MAX_STREAMS else (direct, reference, relay)
                )
                for target in targets:
                    result = asyncio.run(run_load(target, load, upstream.process.pid))
                    results.append(result)
                    print(_row(result), flush=True)
    return results


HEADER = (
    f"{'target':<8}{'N':>6}{'err':>5}{'ttft p50':>10}{'ttft p99':>10}{'gap p99':>9}{'tok/s':>7}"
    f"{'cpu us/tok':>11}{'rss KiB/st':>11}{'upstr cpu':>10}{'client cpu':>11}"
)


def _row(r: Result) -> str:
    cpu = f"{r.server_cpu_us_per_token:.1f}" if r.server_cpu_us_per_token is not None else "-"
    rss = f"{r.server_rss_kib_per_stream:.1f}" if r.server_rss_kib_per_stream is not None else "-"
    return (
        f"{r.target:<8}{r.streams:>6}{r.errors:>5}{r.ttft_p50_ms:>9.1f}ms{r.ttft_p99_ms:>8.1f}ms"
        f"{r.gap_p99_ms:>7.1f}ms{r.tokens_per_s_per_stream:>7.0f}{cpu:>11}{rss:>11}"
        f"{r.upstream_cpu_pct:>9.0f}%{r.client_cpu_pct:>10.0f}%"
    )


def summary(results: list[Result]) -> list[str]:
    """What each relay adds, per N: relay minus direct, measured side by side; and chatapp's CPU
    per token against the bare reference relay's."""
    lines = [
        f"{'relay':<8}{'N':>6}{'added ttft p50':>16}{'added ttft p99':>16}{'added gap p99':>15}"
        f"{'errors':>8}{'cpu vs bare':>13}"
    ]
    by_n: dict[int, dict[str, Result]] = {}
    for r in results:
        by_n.setdefault(r.streams, {})[r.target] = r
    for n, group in by_n.items():
        d, b = group["direct"], group.get("bare")
        for c in (r for r in (b, group["chatapp"]) if r is not None):
            ratio = (
                f"{c.server_cpu_us_per_token / b.server_cpu_us_per_token:.2f}x"
                if b and c.server_cpu_us_per_token and b.server_cpu_us_per_token
                else "-"
            )
            lines.append(
                f"{c.target:<8}{n:>6}{c.ttft_p50_ms - d.ttft_p50_ms:>14.1f}ms"
                f"{c.ttft_p99_ms - d.ttft_p99_ms:>14.1f}ms{c.gap_p99_ms - d.gap_p99_ms:>13.1f}ms"
                f"{c.errors:>8}{ratio:>13}"
            )
    clean = [r.streams for r in results if r.target == "chatapp" and r.errors == 0]
    lines.append(f"largest N with no errors (chatapp): {max(clean) if clean else 'none'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few streams, a few seconds: proves it runs")
    parser.add_argument("--streams", type=int, nargs="*", help="the N to run (default 100 1000 2000)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/bench.json"))
    args = parser.parse_args()

    if args.smoke:
        loads = [Load(streams=5, tokens_per_s=50, tokens=20, ramp_s=0.2)]
        fast = Load(streams=1, tokens_per_s=1000, tokens=200, ramp_s=0)
    else:
        loads = [Load(streams=n) for n in (args.streams or [100, 1000, 2000])]
        fast = Load(streams=1, tokens_per_s=1000, tokens=2000, ramp_s=0)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(HEADER)
    started = time.monotonic()
    results = run_all(loads, fast, args.workers)
    print()
    for line in summary(results):
        print(line)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
