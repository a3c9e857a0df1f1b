"""The cost of keeping conversations: `python -m bench.conversations` (about a minute), `--smoke` (seconds).

1. CPU per token, side by side in one server: rounds of N streams on the stateless
   `POST /api/chat` and N on `POST /api/conversations/<id>/messages` (each in a
   conversation of its own, so the answer is stored, checkpointed every
   CHATAPP_CHECKPOINT_S and finished), alternating, on one chatapp under gunicorn
   with its SQLite store. Prints the medians and their ratio (target: at most 1.15x).
2. Rendering a conversation of 200 messages on the server: `GET /c/<id>` (the page)
   and `GET /api/conversations/<id>` (the JSON), median and p95 over repeated
   requests on loopback (target: under 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.client import CHATAPP_END, CHATAPP_TOKEN, chat_request, open_stream
from bench.processes import BenchUpstream, chatapp_server, process_cpu_seconds
from bench.stats import percentile


@dataclass(frozen=True)
class Round:
    path: str  # "/api/chat" or "conversation"
    cpu_us_per_token: float
    tokens: int
    errors: int


def json_request(method: str, url: str, body: object = None) -> Any:
    """A JSON request to chatapp's API; its JSON answer (None when empty)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


async def _streams(port: int, requests: list[bytes], ramp_s: float) -> tuple[int, int]:
    """Run the streams together; (tokens received, streams that failed)."""

    async def one(i: int, request: bytes) -> tuple[int, bool]:
        await asyncio.sleep(i * ramp_s / len(requests))
        stream = await open_stream("127.0.0.1", port, request, CHATAPP_TOKEN, CHATAPP_END)
        timing = await stream.finished
        return len(timing.token_times), timing.complete and timing.status == 200

    results = await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
    return sum(t for t, _ in results), sum(1 for _, ok in results if not ok)


def run_round(server_url: str, port: int, pids: list[int], kind: str, n: int, model: str) -> Round:
    if kind == "/api/chat":
        bodies = [
            {"model": model, "messages": [{"role": "user", "content": f"stream {i}"}]} for i in range(n)
        ]
        requests = [chat_request("127.0.0.1", port, "/api/chat", b) for b in bodies]
    else:
        ids = [
            json_request("POST", f"{server_url}/api/conversations", {"model": model})["id"] for _ in range(n)
        ]
        requests = [
            chat_request("127.0.0.1", port, f"/api/conversations/{cid}/messages", {"content": f"stream {i}"})
            for i, cid in enumerate(ids)
        ]
    cpu0 = process_cpu_seconds(pids)
    tokens, errors = asyncio.run(_streams(port, requests, ramp_s=1.0))
    cpu = process_cpu_seconds(pids) - cpu0
    return Round(kind, cpu / tokens * 1e6 if tokens else float("nan"), tokens, errors)


def page_render_ms(server_url: str, model: str, messages: int, repeat: int) -> dict[str, float]:
    """Median and p95 of serving a conversation of `messages` messages, as a page and as JSON."""
    cid = json_request("POST", f"{server_url}/api/conversations", {"model": model})["id"]
    for i in range(messages // 2):
        request = urllib.request.Request(
            f"{server_url}/api/conversations/{cid}/messages",
            data=json.dumps({"content": f"Question {i}: " + "words " * 40}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    figures = {}
    for name, path in (("page", f"/c/{cid}"), ("json", f"/api/conversations/{cid}")):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            with urllib.request.urlopen(server_url + path, timeout=30) as response:
                response.read()
            times.append((time.perf_counter() - start) * 1000)
        figures[f"{name}_p50_ms"] = statistics.median(times)
        figures[f"{name}_p95_ms"] = percentile(times, 95)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small and quick: proves it runs")
    args = parser.parse_args()
    n, tokens, rounds, repeat = (5, 40, 1, 5) if args.smoke else (100, 200, 3, 50)
    model = f"bench-ttft0-tps20-len{tokens}"
    with (
        tempfile.TemporaryDirectory() as folder,
        BenchUpstream() as upstream,
        chatapp_server(upstream, DATABASE_URL=f"sqlite:///{folder}/bench.sqlite3") as app,
    ):
        assert app.process is not None
        pids = [app.process.pid, *app.worker_pids()]
        run_round(app.url, app.port, pids, "/api/chat", 5, model)  # warm-up: the SDK client, the store
        run_round(app.url, app.port, pids, "conversation", 5, model)
        results: list[Round] = []
        for _ in range(rounds):
            for kind in ("/api/chat", "conversation"):
                r = run_round(app.url, app.port, pids, kind, n, model)
                results.append(r)
                cpu = f"{r.cpu_us_per_token:6.1f} us/token"
                print(f"{r.path:<14} N={n:<4} tokens={r.tokens:<6} errors={r.errors} cpu {cpu}", flush=True)
        chat = statistics.median(r.cpu_us_per_token for r in results if r.path == "/api/chat")
        stored = statistics.median(r.cpu_us_per_token for r in results if r.path == "conversation")
        ratio = stored / chat
        print(f"\nmedian cpu per token: /api/chat {chat:.1f} us, conversation {stored:.1f} us", end="")
        print(f", ratio {ratio:.2f}x")
        render = page_render_ms(app.url, model.replace("len" + str(tokens), "len20"), 200, repeat)
        print(
            "200-message conversation: page p50 {page_p50_ms:.1f} ms p95 {page_p95_ms:.1f} ms, "
            "JSON p50 {json_p50_ms:.1f} ms p95 {json_p95_ms:.1f} ms".format(**render)
        )


if __name__ == "__main__":
    main()
