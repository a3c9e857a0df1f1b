"""OpenAI, or any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio), via the official SDK.

The SDK does what it is good at: auth, base URL, headers, retries before
the stream starts, and turning HTTP statuses into typed exceptions. The body of
the stream is read straight from the connection's socket (`upstream_body.py`)
and decoded with orjson (`completion_events.py`), instead of building a
pydantic object per token, which costs an order of magnitude more CPU, and
instead of httpx's iterators, which cost several times the decoding itself.

Retries are for 429, 5xx and connection errors (the SDK's own rules), not for
a server that took the request and then said nothing for `idle_s`: sending it
again would make the model run again, and keep the person waiting for up to
`max_retries + 1` idle periods (see `_HttpClient`).

Closing a stream shuts the upstream connection, which ends a read that is
blocked in another greenlet at once; the upstream sees its connection close.
An answer read to its end leaves the connection in the SDK's pool for reuse;
one whose body cannot be used (malformed, over a limit) is closed as soon as
the decoder says so, not when the relay has written the error.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai

from .base import BackendEvent, ChatRequest, FailureKind, UpstreamError
from .completion_events import MAX_DELTA_CHARS, CompletionEventDecoder
from .event_stream_lines import MAX_LINE_BYTES
from .openai_errors import upstream_error
from .upstream_body import UpstreamBody, take_body

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenAIOptions:
    # repr=False keeps the key out of any log line or traceback that prints the options.
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None  # None: OpenAI's (or OPENAI_BASE_URL, as the SDK reads it)
    connect_timeout_s: float = 10.0
    idle_s: float = 60.0  # the longest silence, for the headers and then between reads
    max_retries: int = 2
    max_line_bytes: int = MAX_LINE_BYTES  # one line of the upstream's stream
    max_delta_chars: int = MAX_DELTA_CHARS  # one text or reasoning delta


class OpenAIBackend:
    def __init__(self, options: OpenAIOptions) -> None:
        self.options = options
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        # Base URLs whose server answered 400 to `stream_options`; asked without it from then on.
        self.no_stream_options: set[str] = set()

    @property
    def client(self) -> openai.OpenAI:
        # Created on first use, in the worker process: gunicorn's gevent worker patches
        # sockets and ssl after fork, and a client (its connection pool, its SSL context)
        # made before that would block the whole worker on every read.
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> openai.OpenAI:
        o = self.options
        timeout = httpx2.Timeout(o.idle_s, connect=o.connect_timeout_s)
        # One pool per worker, shared by all its greenlets; no cap on connections because
        # gunicorn's worker_connections already bounds the streams a worker holds.
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=100)
        return openai.OpenAI(
            # Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
            api_key=o.api_key or "no-key-needed",
            base_url=o.base_url,
            max_retries=o.max_retries,
            http_client=_HttpClient(timeout=timeout, limits=limits),
        )

    def stream(self, request: ChatRequest) -> OpenAIStream:
        return OpenAIStream(self, request)

    def list_models(self) -> list[str]:
        """`GET /v1/models`, every page of it (OpenAI, Ollama, vLLM, llama.cpp and LM Studio all serve it)."""
        return [model.id for model in self.client.models.list()]

    def close(self) -> None:
        """Close the pooled connections (a worker's backend lives as long as the worker; tests
        that make their own close them)."""
        if self._client is not None:
            self._client.close()


class _HttpClient(openai.DefaultHttpxClient):
    """The SDK's default httpx client, except that silence before the headers is not retried.

    The SDK retries every timeout. With `stream=True`, `send` returns once the
    headers are in, so a read timeout in it means the server took the request
    and said nothing for `idle_s`: retrying sends the request again (the model
    may run each time) after each such wait. Connect timeouts (nothing was sent),
    429 and 5xx are still retried. The SDK's retry loop re-raises its own
    `OpenAIError`s from the HTTP client as they are, without retrying ("Propagate
    OpenAIErrors as-is" in its `_base_client.py`), so raising `APITimeoutError`
    here ends the request after one idle period, with the error the SDK would
    raise after its last retry. This overrides httpx's public `Client.send`; the
    SDK's own hook, `_should_retry`, is private and only sees error statuses.
    """

    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        try:
            return super().send(request, **kwargs)
        except httpx2.ReadTimeout as exc:
            raise openai.APITimeoutError(request=request) from exc


class OpenAIStream:
    def __init__(self, backend: OpenAIBackend, request: ChatRequest) -> None:
        self.model = request.model
        self._backend = backend
        self._request = request
        self._idle_s = backend.options.idle_s
        self._body: UpstreamBody | None = None
        # The SDK's response context, entered by open() and left by _end().
        self._response_scope: contextlib.ExitStack | None = None
        options = backend.options
        self._decoder = CompletionEventDecoder(options.max_line_bytes, options.max_delta_chars)
        self._idle_until = 0.0
        self._closed = False

    @property
    def served_model(self) -> str | None:
        return self._decoder.served_model

    def open(self) -> None:
        with contextlib.ExitStack() as scope:
            response = self._open(scope)
            self._body = take_body(response)
            # Kept open past this block: the response lives until _end.
            self._response_scope = scope.pop_all()
        self._idle_until = time.monotonic() + self._idle_s
        if self._closed:  # closed while the request was being made
            self._end(read_to_end=False)

    def read(self, timeout: float | None) -> list[BackendEvent]:
        if self._closed:
            return []
        try:
            self._decoder.check()  # an error that came after the events the last read returned
        except UpstreamError as exc:
            self._stop_reading(exc)
            raise
        body = self._body
        if body is None:  # not open yet, or read to its end
            return []
        idle_left = self._idle_until - time.monotonic()
        if idle_left <= 0:
            self._end(read_to_end=False)
            raise self._silent()
        try:
            # With no timeout (under gevent) the relay wakes the read at its next heartbeat, so the
            # idle limit is checked at least that often.
            data = body.read(None if timeout is None else min(timeout, idle_left))
        except TimeoutError:
            return []  # silence shorter than the idle limit: the relay decides what it means
        except (OSError, httpx2.HTTPError) as exc:
            # A read fails on purpose when close() shuts the connection from another greenlet
            # (which also let go of the body).
            if self._body is None:
                return []
            self._end(read_to_end=False)
            raise self._broken(exc) from None
        self._idle_until = time.monotonic() + self._idle_s
        try:
            if body.finished:
                self._end(read_to_end=True)
                return self._decoder.feed(data, last=True)
            events = self._decoder.feed(data) if data else []
        except UpstreamError as exc:
            self._stop_reading(exc)
            raise
        if not events:
            # Under gevent a read that finds data waiting does not switch greenlets: a body that
            # keeps coming without completing an event (a line without end) would hold the worker
            # until the line limit. time.sleep(0), gevent's once patched, lets the others run.
            time.sleep(0)
        return events

    def close(self) -> None:
        self._closed = True
        self._end(read_to_end=False)

    def _end(self, *, read_to_end: bool) -> None:
        """Give the connection back (to the pool when the body was read to its end, else closed),
        and leave the SDK's response context. Safe to call more than once, from any greenlet."""
        body, scope = self._body, self._response_scope
        self._body = self._response_scope = None
        if body is not None:
            if read_to_end:
                body.release()
            else:
                body.abort()
        if scope is not None:
            scope.close()

    def _stop_reading(self, exc: UpstreamError) -> None:
        """The rest of the body is of no use: close it now, so that an upstream sending without
        end stops (the relay writes the error to a client that may be slow to take it)."""
        self._end(read_to_end=False)
        if exc.kind is FailureKind.MALFORMED:
            log.warning("upstream stream unreadable: %s", exc.message)

    def _silent(self) -> UpstreamError:
        return UpstreamError(
            FailureKind.TIMEOUT,
            f"The model stopped sending for {self._idle_s:g} s, so chatapp gave up on it. Try again.",
        )

    def _broken(self, exc: Exception) -> UpstreamError:
        if isinstance(exc, httpx2.TimeoutException):  # httpx's own idle timeout (ThreadedBody)
            return self._silent()
        log.warning("upstream stream broke: %s", type(exc).__name__)
        return UpstreamError(
            FailureKind.DISCONNECTED,
            "The connection to the model server was lost in the middle of the answer. Try again.",
        )

    def _open(self, scope: contextlib.ExitStack) -> httpx2.Response:
        backend = self._backend
        base_url = str(backend.client.base_url)
        with_usage = base_url not in backend.no_stream_options
        try:
            return self._create(scope, with_usage)
        except openai.BadRequestError as exc:
            if not with_usage or "stream_options" not in str(exc):
                raise upstream_error(exc, self.model) from None
            log.info("upstream rejects stream_options; asking without it from now on")
            backend.no_stream_options.add(base_url)
        except openai.APIError as exc:
            raise upstream_error(exc, self.model) from None
        try:
            return self._create(scope, with_usage=False)
        except openai.APIError as exc:
            raise upstream_error(exc, self.model) from None

    def _create(self, scope: contextlib.ExitStack, with_usage: bool) -> httpx2.Response:
        r = self._request
        params: dict[str, Any] = {
            "model": r.model,
            "messages": [{"role": m.role, "content": m.content} for m in r.messages],
            "stream": True,
        }
        if with_usage:
            params["stream_options"] = {"include_usage": True}
        if r.max_tokens is not None:
            params["max_tokens"] = r.max_tokens
        if r.temperature is not None:
            params["temperature"] = r.temperature
        completions = self._backend.client.chat.completions
        # with_streaming_response: entering its context sends the request and raises on an error
        # status, but leaves the body unread for upstream_body.py; leaving it closes the response.
        api_response = scope.enter_context(completions.with_streaming_response.create(**params))
        response: httpx2.Response = api_response.http_response
        return response
