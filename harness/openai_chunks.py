"""The SSE frames of a streamed OpenAI chat completion, built once for both fake upstreams.

In the order OpenAI sends them: a role chunk, content (or `reasoning_content`, as vLLM,
DeepSeek and llama.cpp's server send) deltas, a finish chunk, a usage chunk with empty
`choices` when `stream_options.include_usage` was asked, then `data: [DONE]`. Each chunk
names the model that answered, which is the one asked for unless a server says otherwise
(llama.cpp's server answers any name with its own). JSON keeps its default separators and
raw UTF-8: the bench client finds tokens by `"delta": {"content": "`, and the tests split
frames inside multi-byte characters.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

DONE = b"data: [DONE]\n\n"


def frame(payload: dict[str, Any]) -> bytes:
    """One `data:` event; JSON holds no raw newline, so one line is always enough."""
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


@dataclass(frozen=True)
class CompletionChunks:
    """The frames of one completion, answered by `model`."""

    model: str
    id: str = "chatcmpl-fake"
    created: int = field(default_factory=lambda: int(time.time()))

    def role(self) -> bytes:
        return frame(self._chunk({"role": "assistant", "content": ""}))

    def content(self, text: str) -> bytes:
        return frame(self._chunk({"content": text}))

    def reasoning(self, text: str) -> bytes:
        return frame(self._chunk({"reasoning_content": text}))

    def finish(self, reason: str) -> bytes:
        return frame(self._chunk({}, finish_reason=reason))

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return frame({**self._chunk({}), "choices": [], "usage": usage})

    def _chunk(self, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
