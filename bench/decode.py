"""Micro-benchmark: the CPU cost of decoding one streamed chunk, the SDK's way and chatapp's way.

The SDK's way builds a `ChatCompletionChunk` per `data:` line with the same
`construct_type` call that iterating `client.chat.completions.create(stream=True)` makes; chatapp's way
(`chatapp/llm/chunks.py`) decodes the bytes with orjson and frames the SSE
event. Run: `python -m bench.decode`.
"""

from __future__ import annotations

import json
import os
import time

from openai._models import construct_type  # what the SDK's Stream calls per chunk
from openai.types.chat import ChatCompletionChunk

from chatapp import sse
from chatapp.llm.chunks import ChunkDecoder

CHUNK = {
    "id": "chatcmpl-bench",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_1",
    "choices": [{"index": 0, "delta": {"content": " token"}, "logprobs": None, "finish_reason": None}],
}
LINE = json.dumps(CHUNK)
BODY = f"data: {LINE}\n\n".encode()
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 20_000))


def per_chunk_us(work) -> float:
    best = float("inf")
    for _ in range(5):  # best of five: the machine is shared
        start = time.process_time()
        for _ in range(ROUNDS):
            work()
        best = min(best, time.process_time() - start)
    return best / ROUNDS * 1e6


def sdk_object() -> None:
    chunk = construct_type(type_=ChatCompletionChunk, value=json.loads(LINE))
    sse.json_event_frame("token", {"text": chunk.choices[0].delta.content}, "id:1")


decoder = ChunkDecoder()


def chatapp_raw() -> None:
    for event in decoder.feed(BODY):
        sse.json_event_frame("token", {"text": event.text}, "id:1")


def main() -> None:
    sdk = per_chunk_us(sdk_object)
    raw = per_chunk_us(chatapp_raw)
    print(f"SDK object per chunk (json + pydantic + frame): {sdk:6.1f} us")
    print(f"chatapp raw per chunk (orjson + frame):         {raw:6.1f} us")
    print(f"ratio: {sdk / raw:.1f}x")


if __name__ == "__main__":
    main()
