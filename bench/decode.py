"""Micro-benchmark: the CPU cost of decoding one streamed chunk, the SDK's way and chatapp's way.

The SDK's way builds a `ChatCompletionChunk` per `data:` line with the same
`construct_type` call that iterating `client.chat.completions.create(stream=True)` makes; chatapp's way
(`chatapp/llm/completion_events.py`) decodes the bytes with orjson; both frame the SSE event with
`protocol.EventWriter`, as the relay does. Run: `python -m bench.decode`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from openai._models import construct_type  # what the SDK's Stream calls per chunk
from openai.types.chat import ChatCompletionChunk

from chatapp.llm.base import TextDelta
from chatapp.llm.completion_events import CompletionEventDecoder
from chatapp.protocol import EventWriter
from harness.openai_chunks import CompletionChunks

BODY = CompletionChunks("gpt-4o-mini", id="chatcmpl-bench", created=1).content(" token")
LINE = BODY.removeprefix(b"data: ").rstrip(b"\n")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 20_000))


def per_chunk_us(work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(5):  # best of five: the machine is shared
        start = time.process_time()
        for _ in range(ROUNDS):
            work()
        best = min(best, time.process_time() - start)
    return best / ROUNDS * 1e6


writer = EventWriter("bench")


def sdk_object() -> None:
    chunk = construct_type(type_=ChatCompletionChunk, value=json.loads(LINE))
    assert isinstance(chunk, ChatCompletionChunk)
    writer.token(chunk.choices[0].delta.content or "")


decoder = CompletionEventDecoder()


def chatapp_raw() -> None:
    for event in decoder.feed(BODY):
        assert isinstance(event, TextDelta)
        writer.token(event.text)


def main() -> None:
    sdk = per_chunk_us(sdk_object)
    raw = per_chunk_us(chatapp_raw)
    print(f"SDK object per chunk (json + pydantic + frame): {sdk:6.1f} us")
    print(f"chatapp raw per chunk (orjson + frame):         {raw:6.1f} us")
    print(f"ratio: {sdk / raw:.1f}x")


if __name__ == "__main__":
    main()
