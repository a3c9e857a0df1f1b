"""One request's stream: a backend's events in, `text/event-stream` frames out.

The model is read in its own thread of control (a greenlet under gunicorn's
gevent worker, where `threading` and `queue` are patched; a real thread under
`flask run`), so that the response can send heartbeats while the model is
silent. The response side waits on a queue, takes every event that is
already there, and writes them as one chunk: fast streams cost fewer system
calls and no token is held back.

Every stream ends with exactly one `done` event unless the client is gone;
an upstream failure becomes an `error` event first. Closing the response
(the client left) closes the model stream, which ends the upstream request.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import sse
from .llm.base import (
    BackendEvent,
    Finish,
    FinishReason,
    ModelStream,
    ReasoningDelta,
    TextDelta,
    UpstreamCode,
    UpstreamError,
    Usage,
)

log = logging.getLogger(__name__)

KEEP_ALIVE = sse.comment_frame("keep-alive")


class EventName:
    """The SSE event names of the public contract (docs/api.md)."""

    START = "start"
    REASONING = "reasoning"
    TOKEN = "token"
    USAGE = "usage"
    ERROR = "error"
    DONE = "done"


def new_stream_id() -> str:
    """An unguessable id (128 random bits), safe in URLs and in an SSE `id:` line."""
    return secrets.token_urlsafe(16)


_END = object()  # the producer put everything it had


@dataclass
class StreamStats:
    """What the one log line at the end of a stream reports."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    tokens: int = 0
    finish_reason: str = FinishReason.CANCELLED


class Relay:
    def __init__(self, model_stream: ModelStream, *, heartbeat_s: float, client: str | None = None) -> None:
        self.stream_id = new_stream_id()
        self.model_stream = model_stream
        self._heartbeat_s = heartbeat_s
        self._client = client
        self._seq = 0
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.stats = StreamStats()

    def frames(self) -> Iterator[bytes]:
        """The response body. Closing this generator early cancels the model."""
        try:
            threading.Thread(target=self._produce, name=f"model-{self.stream_id}", daemon=True).start()
            # Bytes at once: proxies and the browser see the stream open before the model speaks.
            yield KEEP_ALIVE + self._frame(
                EventName.START, {"stream_id": self.stream_id, "model": self.model_stream.model}
            )
            yield from self._relay_events()
        finally:
            self.model_stream.close()
            self._log_end()

    def _relay_events(self) -> Iterator[bytes]:
        while True:
            try:
                item = self._events.get(timeout=self._heartbeat_s)
            except queue.Empty:
                yield KEEP_ALIVE
                continue
            out: list[bytes] = []
            finished = self._encode(item, out)
            while not finished:
                try:
                    item = self._events.get_nowait()
                except queue.Empty:
                    break
                finished = self._encode(item, out)
            if out:
                yield b"".join(out)
            if finished:
                return

    def _encode(self, item: object, out: list[bytes]) -> bool:
        """Append the frames for one queued item; True when it ends the stream."""
        if type(item) is TextDelta:
            if self.stats.first_token_at is None:
                self.stats.first_token_at = time.monotonic()
            self.stats.tokens += 1
            out.append(self._frame(EventName.TOKEN, {"text": item.text}))
        elif type(item) is ReasoningDelta:
            out.append(self._frame(EventName.REASONING, {"text": item.text}))
        elif type(item) is Usage:
            out.append(
                self._frame(
                    EventName.USAGE,
                    {
                        "prompt_tokens": item.prompt_tokens,
                        "completion_tokens": item.completion_tokens,
                        "total_tokens": item.total_tokens,
                    },
                )
            )
        elif type(item) is Finish:
            out.append(self._done(item.reason))
            return True
        elif type(item) is UpstreamError:
            out.append(self._frame(EventName.ERROR, {"code": item.code, "message": item.message}))
            out.append(self._done(FinishReason.ERROR))
            return True
        elif item is _END:
            # The model stream ended without a Finish: it was closed (cancelled).
            out.append(self._done(FinishReason.CANCELLED))
            return True
        return False

    def _done(self, reason: str) -> bytes:
        self.stats.finish_reason = reason
        return self._frame(EventName.DONE, {"finish_reason": reason})

    def _frame(self, event: str, payload: object) -> bytes:
        self._seq += 1
        return sse.json_event_frame(event, payload, f"{self.stream_id}:{self._seq}")

    def _produce(self) -> None:
        put = self._events.put
        try:
            event: BackendEvent
            for event in self.model_stream:
                put(event)
        except UpstreamError as exc:
            put(exc)
        except Exception:
            log.exception("model stream %s failed", self.stream_id)
            put(
                UpstreamError(
                    UpstreamCode.INTERNAL, "Something went wrong in chatapp while streaming. Try again."
                )
            )
        finally:
            put(_END)

    def _log_end(self) -> None:
        s = self.stats
        ttft = f"{(s.first_token_at - s.started) * 1000:.0f}" if s.first_token_at else "-"
        log.info(
            "stream end id=%s model=%s finish_reason=%s tokens=%d ttft_ms=%s duration_ms=%.0f client=%s",
            self.stream_id,
            self.model_stream.model,
            s.finish_reason,
            s.tokens,
            ttft,
            (time.monotonic() - s.started) * 1000,
            self._client or "-",
        )
