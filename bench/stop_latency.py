"""Stop propagation: how long from a client's abort until the upstream sees its connection close.

chatapp runs as deployed (`gunicorn -c gunicorn.conf.py wsgi:app`, one gevent
worker) against the bench upstream, with 200 streams open the whole time
(trickling at 20 tokens/s: 4000 tokens/s of background load). For each kind of
upstream it then opens more streams, waits until they are under way, aborts
each at a random moment, and takes the upstream's record of when that
connection closed:

- silent: the model is thinking (headers, then nothing): 100 streams at once;
- trickling: 20 tokens/s: 100 streams at once;
- fast: 1000 tokens/s: 4 at a time, 25 rounds (200 fast streams at once would be
  200,000 tokens/s, more than two cores relay; the aborts then measure overload).

Run: `python -m bench.stop_latency` (about a minute). Target: p99 at most 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.client import CHATAPP_END, CHATAPP_TOKEN, StreamProtocol, chat_request, open_stream
from bench.processes import BenchUpstream, chatapp_server
from bench.stats import percentile

TRICKLE = "bench-ttft0-tps20-len100000"
CASES = {  # label: (model, streams at once, rounds)
    "silent": ("bench-silent", 100, 1),
    "trickling (20 tok/s)": (TRICKLE, 100, 1),
    "fast (1000 tok/s)": ("bench-ttft0-tps1000-len1000000", 4, 25),
}


def _body(tag: str, model: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": tag}], "model": model}


class Run:
    def __init__(self, app_port: int, upstream: BenchUpstream) -> None:
        self.app_port = app_port
        self.upstream = upstream
        self.rng = random.Random(1)

    def upstream_stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.upstream.port}/stats", timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
            return stats

    async def open(self, model: str, count: int) -> dict[str, StreamProtocol]:
        tags = [f"{model}-{time.monotonic_ns()}-{i}" for i in range(count)]
        streams = await asyncio.gather(
            *(
                open_stream(
                    "127.0.0.1",
                    self.app_port,
                    chat_request("127.0.0.1", self.app_port, "/api/chat", _body(t, model)),
                    CHATAPP_TOKEN,
                    CHATAPP_END,
                )
                for t in tags
            )
        )
        deadline = time.monotonic() + 60
        while not set(tags) <= (await asyncio.to_thread(self.upstream_stats))["opens"].keys():
            if time.monotonic() > deadline:
                raise RuntimeError("the upstream did not get every request within 60 s")
            await asyncio.sleep(0.05)
        return dict(zip(tags, streams, strict=True))

    async def start_stream(self, model: str, tag: str) -> StreamProtocol:
        # The tag is the message: the upstream records opens and closes under it.
        body = {"messages": [{"role": "user", "content": tag}], "model": model}
        request = chat_request("127.0.0.1", self.app_port, "/api/chat", body)
        return await open_stream("127.0.0.1", self.app_port, request, CHATAPP_TOKEN, CHATAPP_END)

    async def abort_all(self, streams: dict[str, StreamProtocol], within_s: float) -> list[float]:
        aborted_at: dict[str, float] = {}

        async def abort_later(tag: str, stream: StreamProtocol) -> None:
            await asyncio.sleep(self.rng.uniform(0.05, within_s))
            aborted_at[tag] = stream.abort()

        await asyncio.gather(*(abort_later(t, s) for t, s in streams.items()))
        deadline = time.monotonic() + 10
        while True:
            closes = (await asyncio.to_thread(self.upstream_stats))["closes"]
            if set(streams) <= closes.keys():
                return [closes[t] - aborted_at[t] for t in streams]
            if time.monotonic() > deadline:
                raise RuntimeError("some upstream connections were still open 10 s after the abort")
            await asyncio.sleep(0.1)

    async def measure(self, model: str, at_once: int, rounds: int) -> list[float]:
        latencies: list[float] = []
        for _ in range(rounds):
            streams = await self.open(model, at_once)
            latencies += await self.abort_all(streams, within_s=0.5)
        return latencies


async def bench(app_port: int, upstream: BenchUpstream, background: int) -> dict[str, dict[str, Any]]:
    run = Run(app_port, upstream)
    held = await run.open(TRICKLE, background)
    results = {}
    for label, (model, at_once, rounds) in CASES.items():
        latencies = await run.measure(model, at_once, rounds)
        results[label] = {
            "samples": len(latencies),
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": max(latencies) * 1000,
        }
    for stream in held.values():
        stream.abort()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--background", type=int, default=200, help="streams held open throughout")
    parser.add_argument("--json", type=Path, default=Path("bench/results/stop_latency.json"))
    args = parser.parse_args()

    with BenchUpstream() as upstream, chatapp_server(upstream, workers=1) as app:
        results = asyncio.run(bench(app.port, upstream, args.background))

    print(
        f"\nStop propagation (client abort -> upstream sees the close), {args.background} streams held open"
    )
    print(f"{'upstream':<24}{'samples':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, r in results.items():
        print(f"{label:<24}{r['samples']:>8}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"background_streams": args.background, "cases": results}, indent=2))
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
