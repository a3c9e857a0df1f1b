"""OpenAI, or any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio), via the official SDK.

The SDK does what it is good at: auth, base URL, headers, retries before the
stream starts, and turning HTTP statuses into typed exceptions. The body of
the stream is read as raw bytes and decoded with orjson (`chunks.py`), instead
of building a pydantic object per token, which costs an order of magnitude
more CPU (and instead of httpx's text and line decoders, which cost more than
the decoding itself).

Closing a stream closes the upstream HTTP response, which ends a read that is
blocked in another greenlet at once; the upstream sees its connection close.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import openai

from ..config import Settings
from ..validation import ChatRequest
from .base import BackendEvent, UpstreamCode, UpstreamError
from .chunks import ChunkDecoder

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
        self._response: httpx2.Response | None = None
        self._closed = False

    def __iter__(self) -> Iterator[BackendEvent]:
        response = self._open()
        self._response = response
        try:
            if self._closed:  # closed while the request was being made
                return
            decoder = ChunkDecoder()
            for data in response.iter_bytes():
                yield from decoder.feed(data)
            yield from decoder.end()
        except httpx2.TimeoutException:
            if not self._closed:
                raise UpstreamError(
                    UpstreamCode.TIMEOUT,
                    f"The model stopped sending for {self._backend.idle_s:g} s, "
                    "so chatapp gave up on it. Try again.",
                ) from None
        except (httpx2.HTTPError, OSError) as exc:
            # A read fails on purpose when close() shuts the response from another greenlet.
            if not self._closed:
                log.warning("upstream stream broke: %s", type(exc).__name__)
                raise UpstreamError(
                    UpstreamCode.DISCONNECTED,
                    "The connection to the model server was lost in the middle of the answer. Try again.",
                ) from None
        finally:
            response.close()

    def close(self) -> None:
        self._closed = True
        if self._response is not None:
            self._response.close()

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
