"""Answers that outlive their connection, with Redis: `python -m bench.resumable` (about a minute),
`--smoke` (seconds).

1. CPU per token, side by side in one server: rounds of N streams on the stateless
   `POST /api/chat` and N resumable answers (`POST /api/conversations/<id>/messages`: run by
   their own greenlet, logged, mirrored to a Redis Stream, stored), alternating, on one chatapp
   under gunicorn with `CHATAPP_REDIS_URL`. chatapp's CPU (master and worker) per token, medians
   and their ratio (target: at most 1.25x); redis-server's own CPU per token beside it.
2. Stop across instances: two chatapp instances sharing Redis and one database; answers
   trickle on A (with background streams held open there), each is stopped through B at a
   random moment; from just before B's stop request is sent to the upstream seeing its
   connection close. p50/p99/max (target: p99 at most 100 ms).
3. Replay: an answer of 2000 events, ended; `GET /api/streams/<id>?after=0` read to its
   `done`, on the instance that ran it (its in-process log) and on the other (the Redis
   Stream). Median and p95 (target: under 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import random
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

from bench.client import CHATAPP_END, CHATAPP_TOKEN, StreamProtocol, chat_request, open_stream
from bench.conversations import Round, json_request, run_round
from bench.processes import BenchUpstream, chatapp_server, process_cpu_seconds
from bench.stats import percentile
from harness.redis import RedisServer

TRICKLE = "bench-ttft0-tps20-len100000"


def _upstream_closes(upstream: BenchUpstream) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{upstream.port}/stats", timeout=10) as response:
        closes: dict[str, float] = json.loads(response.read())["closes"]
        return closes


def cpu_rounds(n: int, rounds: int, tokens: int) -> None:
    model = f"bench-ttft0-tps20-len{tokens}"
    with (
        tempfile.TemporaryDirectory() as folder,
        RedisServer() as redis,
        BenchUpstream() as upstream,
        chatapp_server(
            upstream, DATABASE_URL=f"sqlite:///{folder}/bench.sqlite3", CHATAPP_REDIS_URL=redis.uri
        ) as app,
    ):
        assert app.process is not None
        assert redis.process is not None
        pids = [app.process.pid, *app.worker_pids()]
        run_round(app.url, app.port, pids, "/api/chat", 5, model)  # warm-up: the SDK client, the store
        run_round(app.url, app.port, pids, "conversation", 5, model)
        results: list[tuple[Round, float]] = []
        for _ in range(rounds):
            for kind in ("/api/chat", "conversation"):
                redis_cpu0 = process_cpu_seconds([redis.process.pid])
                r = run_round(app.url, app.port, pids, kind, n, model)
                redis_us = (process_cpu_seconds([redis.process.pid]) - redis_cpu0) / max(r.tokens, 1) * 1e6
                results.append((r, redis_us))
                label = "resumable" if kind == "conversation" else kind
                print(
                    f"{label:<10} N={n:<4} tokens={r.tokens:<6} errors={r.errors} "
                    f"chatapp {r.cpu_us_per_token:6.1f} us/token, redis-server {redis_us:5.1f} us/token",
                    flush=True,
                )
    chat = statistics.median(r.cpu_us_per_token for r, _ in results if r.path == "/api/chat")
    resumable = statistics.median(r.cpu_us_per_token for r, _ in results if r.path == "conversation")
    redis_resumable = statistics.median(u for r, u in results if r.path == "conversation")
    print(f"\nmedian chatapp cpu per token: /api/chat {chat:.1f} us, resumable {resumable:.1f} us", end="")
    print(
        f", ratio {resumable / chat:.2f}x (with redis-server's: {(resumable + redis_resumable) / chat:.2f}x)"
    )


def _start_answer(port: int, conversation_id: str, tag: str) -> tuple[http.client.HTTPConnection, str]:
    """Start an answer and read until its first token; the connection (to close later) and stream id."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"content": tag})
    connection.request(
        "POST", f"/api/conversations/{conversation_id}/messages", body, {"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    stream_id = ""
    while True:
        line = response.fp.readline()
        if not line:
            raise RuntimeError("the answer ended before its first token")
        if line.startswith(b"data: ") and b'"stream_id"' in line:
            stream_id = json.loads(line[6:])["stream_id"]
        if line.startswith(b"event: token"):
            return connection, stream_id


def _held(i: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"held-{i}"}], "model": TRICKLE}


async def _hold_streams(port: int, count: int) -> list[StreamProtocol]:
    return await asyncio.gather(
        *(
            open_stream(
                "127.0.0.1",
                port,
                chat_request("127.0.0.1", port, "/api/chat", _held(i)),
                CHATAPP_TOKEN,
                CHATAPP_END,
            )
            for i in range(count)
        )
    )


def stop_and_replay(stops: int, background: int, replays: int) -> None:
    rng = random.Random(1)
    with (
        tempfile.TemporaryDirectory() as folder,
        RedisServer() as redis,
        BenchUpstream() as upstream,
    ):
        env = {"DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3", "CHATAPP_REDIS_URL": redis.uri}
        with chatapp_server(upstream, 1, None, **env) as a, chatapp_server(upstream, 1, None, **env) as b:
            loop = asyncio.new_event_loop()
            held = loop.run_until_complete(_hold_streams(a.port, background))
            conversation = json_request("POST", f"{a.url}/api/conversations", {"model": TRICKLE})["id"]
            latencies: list[float] = []
            for i in range(stops):
                tag = f"stop-{time.monotonic_ns()}-{i}"
                connection, stream_id = _start_answer(a.port, conversation, tag)
                time.sleep(rng.uniform(0.0, 0.2))
                sent_at = time.monotonic()
                status = _json_status("POST", f"{b.url}/api/chat/{stream_id}/stop")
                if status != 202:
                    raise RuntimeError(f"stop answered {status}")
                deadline = time.monotonic() + 10
                while (closed := _upstream_closes(upstream).get(tag)) is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the upstream connection was still open 10 s after the stop")
                    time.sleep(0.01)
                latencies.append(closed - sent_at)
                connection.close()
            for stream in held:
                stream.abort()
            loop.close()
            print(f"\nStop across instances (through B, the answer on A; {background} streams held on A)")
            print(
                f"samples {len(latencies)}  p50 {percentile(latencies, 50) * 1000:.1f} ms  "
                f"p99 {percentile(latencies, 99) * 1000:.1f} ms  max {max(latencies) * 1000:.1f} ms"
            )

            # 2000 events: start, 1997 tokens, usage, done.
            model = "bench-ttft0-tps1000-len1997"
            conversation = json_request("POST", f"{a.url}/api/conversations", {"model": model})["id"]
            connection, stream_id = _start_answer(a.port, conversation, "replay")
            connection.close()  # the answer goes on without it
            _wait_for_end(a.url, stream_id)
            print("\nReplaying an ended answer of 2000 events (GET /api/streams/<id>?after=0 to its done)")
            for label, server in (
                ("same instance (in-process log)", a),
                ("other instance (Redis Stream)", b),
            ):
                times, events = [], 0
                for _ in range(replays):
                    start = time.perf_counter()
                    with urllib.request.urlopen(
                        f"{server.url}/api/streams/{stream_id}?after=0", timeout=30
                    ) as r:
                        body = r.read()
                    times.append((time.perf_counter() - start) * 1000)
                    events = body.count(b"\nevent: ")
                print(
                    f"{label:<32} events {events}  p50 {statistics.median(times):.1f} ms  "
                    f"p95 {percentile(times, 95):.1f} ms"
                )


def _json_status(method: str, url: str) -> int:
    request = urllib.request.Request(
        url, data=b"{}", method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def _wait_for_end(url: str, stream_id: str) -> None:
    with urllib.request.urlopen(f"{url}/api/streams/{stream_id}?after=0", timeout=60) as response:
        if b"event: done" not in response.read():
            raise RuntimeError("the answer did not end with done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small and quick: proves it runs")
    parser.add_argument("--only", choices=("cpu", "stop"), help="run one part")
    parser.add_argument("--rounds", type=int, default=5, help="CPU rounds of each kind")
    args = parser.parse_args()
    if args.only != "stop":
        if args.smoke:
            cpu_rounds(n=5, rounds=1, tokens=40)
        else:
            cpu_rounds(n=100, rounds=args.rounds, tokens=200)
    if args.only != "cpu":
        if args.smoke:
            stop_and_replay(stops=5, background=5, replays=3)
        else:
            stop_and_replay(stops=100, background=100, replays=30)


if __name__ == "__main__":
    main()
