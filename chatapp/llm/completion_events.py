"""OpenAI chat-completion stream events -> backend events.

Fed the body's bytes as they arrive, it takes each event's data from
`SseLineDecoder` (sse_lines.py), decodes it with orjson straight from bytes
(no pydantic object per token), and yields `TextDelta`, `ReasoningDelta`,
`Usage` and `Finish`. It copes with what real servers send: the role-only
first chunk, empty deltas, the usage chunk whose `choices` is empty,
reasoning under `reasoning_content` (DeepSeek, vLLM) or `reasoning` (Ollama,
OpenRouter), and an `error` object in place of a chunk. A stream that stops
without a `finish_reason` or `[DONE]` is incomplete, not finished. The
`model` the chunks name is kept as `served_model`: a server may answer with
another model than the one asked for (llama.cpp's answers any name with its own).
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import (
    BackendEvent,
    FailureKind,
    Finish,
    ReasoningDelta,
    StopReason,
    TextDelta,
    UpstreamError,
    Usage,
)
from .sse_lines import SseLineDecoder

DONE = b"[DONE]"


class CompletionEventDecoder:
    def __init__(self) -> None:
        self.served_model: str | None = None
        self._sse = SseLineDecoder()
        self._finish: StopReason | None = None
        self._usage: Usage | None = None
        self._done = False
        self._failure: UpstreamError | None = None

    def feed(self, data: bytes, *, last: bool = False) -> list[BackendEvent]:
        """Decode the next bytes of the body, however they were split; `last` when the body ends
        with them. When an error follows good events, the good ones are returned and the error
        is raised by the next call (or `check`)."""
        self.check()
        # Lists, not generators, on this per-token path: a generator frame per event costs more
        # than the event's work.
        events: list[BackendEvent] = []
        try:
            for payload in self._sse.feed(data):
                self._event(payload, events)
            if last:
                events += self.end()
        except UpstreamError as exc:
            if not events:
                raise
            self._failure = exc
        return events

    def check(self) -> None:
        """Raise the error that followed the events the last `feed` returned, if there was one."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def end(self) -> list[BackendEvent]:
        """Called when the body ends: the final usage and finish, or the reason there are none."""
        self.check()
        if self._finish is None and not self._done:
            raise UpstreamError(
                FailureKind.INCOMPLETE,
                "The model server ended the answer early, without saying it was finished. Try again.",
            )
        finish = Finish(self._finish or StopReason.STOP)
        return [finish] if self._usage is None else [self._usage, finish]

    def _event(self, data: bytes, events: list[BackendEvent]) -> None:
        if self._done:
            return
        if data == DONE:
            self._done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _malformed() from None
        if not isinstance(chunk, dict):
            raise _malformed()
        if "error" in chunk:
            raise _reported_error(chunk["error"])
        if self.served_model is None:
            model = chunk.get("model")
            if model and isinstance(model, str):
                self.served_model = model
        usage = chunk.get("usage")
        if usage:
            # Some servers repeat running usage on every chunk; the last one is the total.
            self._usage = _usage(usage)
        choices = chunk.get("choices")
        if not choices:
            return
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise _malformed()
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning and isinstance(reasoning, str):
                events.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if content and isinstance(content, str):
                events.append(TextDelta(content))
        finish = choice.get("finish_reason")
        if finish:
            self._finish = StopReason.LENGTH if finish == "length" else StopReason.STOP


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        raise _malformed()
    try:
        prompt = int(raw.get("prompt_tokens") or 0)
        completion = int(raw.get("completion_tokens") or 0)
        total = int(raw.get("total_tokens") or prompt + completion)
    except (TypeError, ValueError):
        raise _malformed() from None
    return Usage(prompt, completion, total)


def _malformed() -> UpstreamError:
    return UpstreamError(
        FailureKind.MALFORMED, "The model server sent a part of the answer that chatapp could not read."
    )


def _reported_error(error: Any) -> UpstreamError:
    message = error.get("message") if isinstance(error, dict) else error
    detail = message if isinstance(message, str) and message else "no details given"
    return UpstreamError(FailureKind.SERVER_ERROR, f"The model server reported an error: {detail}")
