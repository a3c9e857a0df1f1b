"""The offline demo model: the default when no API key or base URL is configured.

It needs no network and no key, so a fresh checkout streams at once. The answer
is built from the conversation (the same conversation always gets the same
answer), paced like a real model, long enough to try Stop, and it carries
multi-byte UTF-8 and newlines so that every path of the relay and the page is
exercised by just running the app.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import threading
import time

from .base import BackendEvent, ChatRequest, Finish, StopReason, TextDelta, Usage

# The name the demo answers as, and the default CHATAPP_MODEL when the demo is the backend.
DEMO_MODEL = "chatapp-demo"

_TOKEN = re.compile(r"\s*\S{1,8}|\s+")

_OPENINGS = (
    "Good question! You asked about “{topic}”, so let me think out loud for a moment.",
    "Thanks for asking about “{topic}”. Here is how I would look at it.",
    "Let's take “{topic}” step by step.",
)
_SENTENCES = (
    "I am chatapp's built-in demo model, so I run offline and make no network calls.",
    "Every word you see is streamed from the server as a separate server-sent event.",
    "Press Stop at any moment and the server ends the generation straight away.",
    "The relay sends each token the moment it arrives, without buffering the whole answer.",
    "Set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server, to talk to a real model.",
    "A gevent worker can hold thousands of these streams at once, since each one mostly waits.",
    "Newlines inside a token are safe too, because every event's data is one line of JSON.",
    "Résumé, Zürich and São Paulo are spelled correctly here, and so is 日本語.",
    "If the answer feels slow, that is on purpose: I pace myself like a real model would.",
)
# Always part of the answer, so every run exercises 2-, 3- and 4-byte UTF-8.
_UNICODE_SENTENCE = (
    "Multi-byte characters survive the trip intact: café, naïve, 中文字符, and emoji like 🚀 and 🧪."
)
_CLOSINGS = (
    "That is all from the demo model. Ask me anything else! ✨",
    "I hope that helps — and remember, a real model is one environment variable away. 👋",
    "Thanks for trying chatapp. 谢谢！",
)


def compose_answer(request: ChatRequest) -> str:
    """The demo's answer: deterministic for a given conversation, different for different ones."""
    conversation = "\x1e".join(f"{m.role}\x1f{m.content}" for m in request.messages)
    seed = int.from_bytes(hashlib.sha256(conversation.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    topic = " ".join(request.messages[-1].content.split())[:60]
    sentences = rng.sample(_SENTENCES, k=6)
    sentences.insert(rng.randrange(4), _UNICODE_SENTENCE)
    bullets = "\n".join(f"- {s}" for s in sentences[4:])
    return (
        f"{rng.choice(_OPENINGS).format(topic=topic)}\n\n"
        f"{' '.join(sentences[:2])}\n\n{' '.join(sentences[2:4])}\n\n"
        f"A few more things worth knowing:\n{bullets}\n\n{rng.choice(_CLOSINGS)}"
    )


def tokenize(text: str) -> list[str]:
    """Split text into token-sized pieces (a word or part of one, with its leading space)."""
    return _TOKEN.findall(text)


class DemoStream:
    def __init__(self, request: ChatRequest, tokens_per_s: float, first_token_s: float) -> None:
        self.model = DEMO_MODEL
        self.served_model: str | None = DEMO_MODEL
        self._request = request
        self._interval = 1.0 / tokens_per_s
        self._first_token_s = first_token_s
        self._closed = threading.Event()
        self._tokens: list[str] = []
        self._finish = StopReason.STOP
        self._next = 0  # index of the next token to send
        self._start = 0.0
        self._ended = False

    def open(self) -> None:
        tokens = tokenize(compose_answer(self._request))
        limit = self._request.max_tokens
        if limit is not None and limit < len(tokens):
            tokens, self._finish = tokens[:limit], StopReason.LENGTH
        self._tokens = tokens
        # An absolute schedule, so pacing does not drift with the consumer's speed.
        self._start = time.monotonic() + self._first_token_s

    def read(self, timeout: float | None) -> list[BackendEvent]:
        if self._ended:
            return []
        wait = self._start + self._next * self._interval - time.monotonic()
        if timeout is not None:
            wait = min(wait, timeout)
        # Event.wait instead of sleep: close() wakes it at once.
        if self._closed.wait(max(wait, 0.0)):
            return []
        now = time.monotonic()
        events: list[BackendEvent] = []
        while self._next < len(self._tokens) and self._start + self._next * self._interval <= now:
            events.append(TextDelta(self._tokens[self._next]))
            self._next += 1
        if self._next == len(self._tokens):
            self._ended = True
            prompt_chars = sum(len(m.content) for m in self._request.messages)
            prompt_tokens = math.ceil(prompt_chars / 4)
            sent = len(self._tokens)
            events += [Usage(prompt_tokens, sent, prompt_tokens + sent), Finish(self._finish)]
        return events

    def close(self) -> None:
        self._closed.set()


class DemoBackend:
    """Answers `tokens_per_s` tokens a second, the first after `first_token_s`."""

    def __init__(self, tokens_per_s: float, first_token_s: float) -> None:
        self._tokens_per_s = tokens_per_s
        self._first_token_s = first_token_s

    def stream(self, request: ChatRequest) -> DemoStream:
        return DemoStream(request, self._tokens_per_s, self._first_token_s)

    def list_models(self) -> list[str]:
        return [DEMO_MODEL]
