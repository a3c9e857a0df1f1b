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

What one stream may make a worker hold is bounded: a line (or one event) over
`max_line_bytes` (sse_lines.py) and a text or reasoning delta over
`max_delta_chars` are `malformed`, so that one upstream cannot stall the other
streams of the worker or fill its memory with a single piece of an answer.
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
from .event_stream_lines import MAX_LINE_BYTES, LineTooLong, SseLineDecoder

DONE = b"[DONE]"

# A model streams a token, a few characters, per delta. The most a real server sends at once is a
# whole answer as one delta (a non-streaming model behind a streaming proxy): 128K tokens of output
# at most, about 512K characters. Past 1M characters a delta is not an answer; ten 5 MB ones at
# once stalled the other streams of a worker by 320-430 ms and added 164-203 MB to it.
MAX_DELTA_CHARS = 1024 * 1024


class CompletionEventDecoder:
    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES, max_delta_chars: int = MAX_DELTA_CHARS) -> None:
        self.served_model: str | None = None
        self._sse = SseLineDecoder(max_line_bytes)
        self._max_delta_chars = max_delta_chars
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
            failure = exc
        except LineTooLong as exc:
            failure = self._decode_before(exc, events)
        else:
            return events
        if not events:
            raise failure
        self._failure = failure
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

    def _decode_before(self, too_long: LineTooLong, events: list[BackendEvent]) -> UpstreamError:
        """Decode the events completed before an over-long line; the error to report: the first."""
        try:
            for payload in too_long.completed:
                self._event(payload, events)
        except UpstreamError as exc:
            return exc
        return UpstreamError(
            FailureKind.MALFORMED,
            "The model server sent a part of the answer larger than chatapp accepts "
            f"(a line of over {too_long.limit:,} bytes).",
        )

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
            content = delta.get("content")
            # JSON takes a byte or more per character: only a payload this long can hold a longer delta.
            if len(data) > self._max_delta_chars:
                self._check_delta_size(reasoning, content)
            if reasoning and isinstance(reasoning, str):
                events.append(ReasoningDelta(reasoning))
            if content and isinstance(content, str):
                events.append(TextDelta(content))
        finish = choice.get("finish_reason")
        if finish:
            self._finish = StopReason.LENGTH if finish == "length" else StopReason.STOP

    def _check_delta_size(self, *texts: object) -> None:
        limit = self._max_delta_chars
        if any(isinstance(text, str) and len(text) > limit for text in texts):
            raise UpstreamError(
                FailureKind.MALFORMED,
                "The model server sent a part of the answer larger than chatapp accepts "
                f"(over {limit:,} characters at once).",
            )


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
