"""Soak: minutes of mixed, misbehaving traffic; the worker's memory and file descriptors must stay flat.

chatapp (one gevent worker, `CHATAPP_WRITE_TIMEOUT_S=5`) in front of the bench
upstream, with about 100 streams open at any time, each one of: a normal answer,
one aborted at a random moment, an upstream 500, an upstream that breaks
mid-answer, a silent upstream aborted by the client, and a slow reader that stops
reading a fast answer (cut by the write timeout). Every 10 s it samples the
worker's resident memory, open file descriptors, live streams and greenlets.

Run: `python -m bench.soak` (10 minutes; `--seconds 60` for a short one). Not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import urllib.request
from pathlib import Path

from bench.client import CHATAPP_END, CHATAPP_TOKEN, chat_request, open_stream
from bench.processes import BenchUpstream, chatapp_server, resident_bytes

KINDS = {  # kind: (model, what the client does)
    "normal": ("bench-ttft50-tps50-len100", "read"),
    "aborted": ("bench-ttft50-tps50-len1000", "abort"),
    "upstream 500": ("bench-fail", "read"),
    "upstream breaks": ("bench-ttft0-tps50-len1000-drop40", "read"),
    "silent, aborted": ("bench-silent", "abort"),
    "slow reader": ("bench-ttft0-tps2000-len40000", "stall"),
}


async def one_stream(port: int, rng: random.Random, counts: dict[str, int]) -> None:
    kind = rng.choice(list(KINDS))
    model, action = KINDS[kind]
    body = {"messages": [{"role": "user", "content": f"soak {time.monotonic_ns()}"}], "model": model}
    stream = await open_stream(
        "127.0.0.1", port, chat_request("127.0.0.1", port, "/api/chat", body), CHATAPP_TOKEN, CHATAPP_END
    )
    if action == "abort":
        await asyncio.sleep(rng.uniform(0.05, 3))
        stream.abort()
    elif action == "stall":
        assert stream.transport is not None
        stream.transport.pause_reading()  # a client that stops reading
        await asyncio.sleep(rng.uniform(6, 9))
        stream.abort()
    await stream.finished
    counts[kind] = counts.get(kind, 0) + 1


def sample(app_port: int, worker: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/debug/stats", timeout=10) as response:
        stats = json.loads(response.read())
    return {
        "t": time.monotonic(),
        "rss_mib": resident_bytes([worker]) / 2**20,
        "fds": len(os.listdir(f"/proc/{worker}/fd")),
        "streams": stats["streams"],
        "greenlets": stats["greenlets"],
    }


async def soak(
    app_port: int, worker: int, seconds: float, concurrency: int
) -> tuple[list[dict[str, float]], dict[str, int]]:
    rng = random.Random(42)
    counts: dict[str, int] = {}
    samples = [await asyncio.to_thread(sample, app_port, worker)]
    deadline = time.monotonic() + seconds
    running: set[asyncio.Task[None]] = set()
    next_sample = time.monotonic() + 10
    while time.monotonic() < deadline:
        while len(running) < concurrency:
            task = asyncio.ensure_future(one_stream(app_port, rng, counts))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.sleep(0.05)
        if time.monotonic() >= next_sample:
            samples.append(await asyncio.to_thread(sample, app_port, worker))
            next_sample += 10
    await asyncio.gather(*running, return_exceptions=True)
    await asyncio.sleep(3)  # let the worker finish what the last aborts started
    samples.append(await asyncio.to_thread(sample, app_port, worker))
    return samples, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--json", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args()

    env = {"CHATAPP_WRITE_TIMEOUT_S": "5", "CHATAPP_DEBUG_STATS": "1", "CHATAPP_UPSTREAM_IDLE_S": "30"}
    with BenchUpstream() as upstream, chatapp_server(upstream, 1, None, **env) as app:
        (worker,) = app.worker_pids()
        samples, counts = asyncio.run(soak(app.port, worker, args.seconds, args.concurrency))
        tracebacks = app.output().count("Traceback")

    warm = samples[1] if len(samples) > 2 else samples[0]  # after the first 10 s of warm-up
    end = samples[-1]
    print(
        f"\nSoak: {args.seconds:.0f} s, {args.concurrency} streams at a time, {sum(counts.values())} streams"
    )
    print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"{'':<12}{'RSS MiB':>9}{'fds':>6}{'streams':>9}{'greenlets':>11}")
    for label, s in (("start", samples[0]), ("after 10 s", warm), ("peak", None), ("end (idle)", end)):
        if s is None:
            print(
                f"{label:<12}{max(x['rss_mib'] for x in samples):>9.1f}{max(x['fds'] for x in samples):>6}"
                f"{max(x['streams'] for x in samples):>9}{max(x['greenlets'] for x in samples):>11}"
            )
        else:
            print(f"{label:<12}{s['rss_mib']:>9.1f}{s['fds']:>6}{s['streams']:>9}{s['greenlets']:>11}")
    print(f"tracebacks in the server log: {tracebacks}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"samples": samples, "counts": counts, "tracebacks": tracebacks}, indent=2)
    )
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
