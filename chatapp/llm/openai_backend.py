"""OpenAI, or any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio), via the official SDK.

The SDK does what it is good at: auth, base URL, headers, retries before
the stream starts, and turning HTTP statuses into typed exceptions. The body of
the stream is read straight from the connection's socket (`http_body.py`) and
decoded with orjson (`chunks.py`), instead of building a pydantic object per
token, which costs an order of magnitude more CPU, and instead of httpx's
iterators, which cost several times the decoding itself.

Closing a stream shuts the upstream connection, which ends a read that is
blocked in another greenlet at once; the upstream sees its connection close.
An answer read to its end leaves the connection in the SDK's pool for reuse.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Any

import httpx2
import openai

from ..config import Settings
from ..validation import ChatRequest
from .base import BackendEvent, UpstreamCode, UpstreamError
from .chunks import ChunkDecoder
from .http_body import SocketBody, ThreadedBody

log = logging.getLogger(__name__)


class OpenAIBackend:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.idle_s = settings.upstream_idle_s
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
        s = self._settings
        timeout = httpx2.Timeout(s.upstream_idle_s, connect=s.upstream_connect_timeout_s)
        # One pool per worker, shared by all its greenlets; no cap on connections because
        # gunicorn's worker_connections already bounds the streams a worker holds.
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=100)
        return openai.OpenAI(
            # Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
            api_key=s.openai_api_key or "no-key-needed",
            base_url=s.openai_base_url,
            max_retries=s.upstream_max_retries,
            http_client=openai.DefaultHttpxClient(timeout=timeout, limits=limits),
        )

    def stream(self, request: ChatRequest) -> OpenAIStream:
        return OpenAIStream(self, request)


class OpenAIStream:
    def __init__(self, backend: OpenAIBackend, request: ChatRequest) -> None:
        self.model = request.model
        self._backend = backend
        self._request = request
        self._body: SocketBody | ThreadedBody | None = None
        self._decoder = ChunkDecoder()
        self._idle_until = 0.0
        self._closed = False

    def open(self) -> None:
        response = self._open()
        body = SocketBody.take(response) or ThreadedBody(response)
        self._body = body
        if self._closed:  # closed while the request was being made
            body.abort()
        self._idle_until = time.monotonic() + self._backend.idle_s

    def read(self, timeout: float | None) -> list[BackendEvent]:
        body = self._body
        if body is None or self._closed:
            return []
        self._decoder.check()  # an error that came after the events the last read returned
        if body.finished:
            return []
        idle_left = self._idle_until - time.monotonic()
        try:
            if idle_left <= 0:
                raise httpx2.ReadTimeout("idle")
            # With no timeout (under gevent) the relay wakes the read at its next heartbeat, so the
            # idle limit is checked at least that often.
            data = body.read(None if timeout is None else min(timeout, idle_left))
        except TimeoutError:
            return []  # silence shorter than the idle limit: the relay decides what it means
        except (OSError, httpx2.HTTPError) as exc:
            # A read fails on purpose when close() shuts the connection from another greenlet.
            if self._closed:
                return []
            body.abort()
            raise self._broken(exc) from None
        self._idle_until = time.monotonic() + self._backend.idle_s
        if body.finished:
            body.release()
            return self._decoder.feed(data, last=True)
        return self._decoder.feed(data) if data else []

    def close(self) -> None:
        self._closed = True
        if self._body is not None:
            self._body.abort()

    def _broken(self, exc: Exception) -> UpstreamError:
        if isinstance(exc, httpx2.TimeoutException):
            return UpstreamError(
                UpstreamCode.TIMEOUT,
                f"The model stopped sending for {self._backend.idle_s:g} s, "
                "so chatapp gave up on it. Try again.",
            )
        log.warning("upstream stream broke: %s", type(exc).__name__)
        return UpstreamError(
            UpstreamCode.DISCONNECTED,
            "The connection to the model server was lost in the middle of the answer. Try again.",
        )

    def _open(self) -> httpx2.Response:
        backend = self._backend
        base_url = str(backend.client.base_url)
        with_usage = base_url not in backend.no_stream_options
        try:
            return self._create(with_usage)
        except openai.BadRequestError as exc:
            if not with_usage or "stream_options" not in str(exc):
                raise upstream_error(exc, self.model) from None
            log.info("upstream rejects stream_options; asking without it from now on")
            backend.no_stream_options.add(base_url)
        except openai.APIError as exc:
            raise upstream_error(exc, self.model) from None
        try:
            return self._create(with_usage=False)
        except openai.APIError as exc:
            raise upstream_error(exc, self.model) from None

    def _create(self, with_usage: bool) -> httpx2.Response:
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
        # with_streaming_response: the SDK sends the request and raises on an error
        # status, but leaves the body unread for chunks.py to decode.
        api_response = completions.with_streaming_response.create(**params).__enter__()
        return api_response.http_response


# The SDK's exceptions in the order to test them (subclasses first), each with its stable code
# and a message a person can act on ({model}, {status} and {detail} are filled in).
_ERRORS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str, str], ...] = (
    (openai.APITimeoutError, UpstreamCode.TIMEOUT, "The model server did not answer in time. Try again."),
    (
        openai.APIConnectionError,
        UpstreamCode.UNREACHABLE,
        "chatapp could not connect to the model server. Try again; if it keeps happening, "
        "the server may be down.",
    ),
    (
        openai.AuthenticationError,
        UpstreamCode.AUTH,
        "The model server rejected chatapp's API key. The operator should check OPENAI_API_KEY.",
    ),
    (
        openai.PermissionDeniedError,
        UpstreamCode.PERMISSION,
        "chatapp's API key is not allowed to use the model {model!r}.",
    ),
    (
        openai.RateLimitError,
        UpstreamCode.RATE_LIMITED,
        "The model server is over its rate limit or quota. Wait a moment and try again.",
    ),
    (openai.NotFoundError, UpstreamCode.NOT_FOUND, "The model {model!r} was not found on the model server."),
    (
        (openai.BadRequestError, openai.UnprocessableEntityError),
        UpstreamCode.BAD_REQUEST,
        "The model server rejected the request: {detail}",
    ),
    (
        openai.APIStatusError,
        UpstreamCode.SERVER_ERROR,
        "The model server failed (HTTP {status}). Try again in a moment.",
    ),
)


def upstream_error(exc: openai.APIError, model: str) -> UpstreamError:
    """Map the SDK's exceptions to a stable code and a message a person can act on."""
    if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
        cause = _root_cause(exc)
        if isinstance(cause, socket.gaierror):
            return UpstreamError(
                UpstreamCode.UNREACHABLE, "chatapp could not look up the model server's address."
            )
        if isinstance(cause, ssl.SSLError):
            return UpstreamError(
                UpstreamCode.UNREACHABLE, "The secure (TLS) connection to the model server failed."
            )
    for kinds, code, template in _ERRORS:
        if isinstance(exc, kinds):
            status = getattr(exc, "status_code", None)
            return UpstreamError(code, template.format(model=model, status=status, detail=_detail(exc)))
    return UpstreamError(UpstreamCode.SERVER_ERROR, f"The model server reported an error: {_detail(exc)}")


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return seen


def _detail(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message
