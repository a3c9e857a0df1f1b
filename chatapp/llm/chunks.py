"""Decoding an OpenAI chat-completions stream body into backend events.

Fed the body's bytes as they arrive, it splits lines (LF, CRLF or a lone CR,
a CR at the end of one read carried into the next), gathers `data:` lines into
events as the SSE rules say, decodes each with orjson straight from bytes, and
yields `TextDelta`, `ReasoningDelta`, `Usage` and `Finish`. It
copes with what real servers send: the role-only first chunk, empty deltas,
the usage chunk whose `choices` is empty, reasoning under `reasoning_content`
(DeepSeek, vLLM) or `reasoning` (Ollama, OpenRouter), and an `error` object
in place of a chunk. A stream that stops without a `finish_reason` or
`[DONE]` is incomplete, not finished.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import (
    BackendEvent,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    UpstreamCode,
    UpstreamError,
    Usage,
)

DONE = b"[DONE]"


class ChunkDecoder:
    def __init__(self) -> None:
        self._pending = b""  # the start of a line whose end has not arrived
        self._data: list[bytes] = []
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._done = False
        self._failure: UpstreamError | None = None

    def feed(self, data: bytes, *, last: bool = False) -> list[BackendEvent]:
        """Decode the next bytes of the body, however they were split; `last` when the body ends
        with them. When an error follows good events, the good ones are returned and the error
        is raised by the next call (or `check`)."""
        self.check()
        if b"\r" in data or self._pending.endswith(b"\r"):
            data = self._pending + data
            # A CR at the very end may be the first half of a CRLF: keep it for the next read.
            keep = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep:
                data = data[:-1]
            lines = data.split(b"\n")
            self._pending = lines.pop() + (b"\r" if keep else b"")
        else:
            lines = (self._pending + data).split(b"\n")
            self._pending = lines.pop()
        # Lists, not generators, on this per-token path: a generator frame per line costs more
        # than the line's work.
        events: list[BackendEvent] = []
        try:
            for line in lines:
                if line.startswith(b"data:"):
                    value = line[5:]
                    self._data.append(value[1:] if value.startswith(b" ") else value)
                elif not line and self._data:
                    data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                    self._data.clear()
                    self._event(data, events)
                # Comments (":"), `event:`/`id:`/`retry:` lines and unknown fields carry nothing we use.
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
                UpstreamCode.INCOMPLETE,
                "The model server ended the answer early, without saying it was finished. Try again.",
            )
        finish = Finish(self._finish or FinishReason.STOP)
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
            self._finish = FinishReason.LENGTH if finish == "length" else FinishReason.STOP


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
        UpstreamCode.MALFORMED, "The model server sent a part of the answer that chatapp could not read."
    )


def _reported_error(error: Any) -> UpstreamError:
    message = error.get("message") if isinstance(error, dict) else error
    detail = message if isinstance(message, str) and message else "no details given"
    return UpstreamError(UpstreamCode.SERVER_ERROR, f"The model server reported an error: {detail}")
