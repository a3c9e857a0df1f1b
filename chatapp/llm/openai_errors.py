"""The SDK's exceptions -> the kind of failure and a message a person can act on.

What `open()` raises before the stream starts (the SDK turns HTTP statuses and
connection failures into typed exceptions): each becomes an `UpstreamError`
whose message says what happened and what to do, never the API key.
"""

from __future__ import annotations

import socket
import ssl

import openai

from .base import FailureKind, UpstreamError

# The SDK's exceptions in the order to test them (subclasses first), each with its kind of failure
# and a message a person can act on ({model}, {status} and {detail} are filled in).
_ERRORS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], FailureKind, str], ...] = (
    (openai.APITimeoutError, FailureKind.TIMEOUT, "The model server did not answer in time. Try again."),
    (
        openai.APIConnectionError,
        FailureKind.UNREACHABLE,
        "chatapp could not connect to the model server. Try again; if it keeps happening, "
        "the server may be down.",
    ),
    (
        openai.AuthenticationError,
        FailureKind.AUTH,
        "The model server rejected chatapp's API key. The operator should check OPENAI_API_KEY.",
    ),
    (
        openai.PermissionDeniedError,
        FailureKind.PERMISSION,
        "chatapp's API key is not allowed to use the model {model!r}.",
    ),
    (
        openai.RateLimitError,
        FailureKind.RATE_LIMITED,
        "The model server is over its rate limit or quota. Wait a moment and try again.",
    ),
    (openai.NotFoundError, FailureKind.NOT_FOUND, "The model {model!r} was not found on the model server."),
    (
        (openai.BadRequestError, openai.UnprocessableEntityError),
        FailureKind.BAD_REQUEST,
        "The model server rejected the request: {detail}",
    ),
    (
        openai.APIStatusError,
        FailureKind.SERVER_ERROR,
        "The model server failed (HTTP {status}). Try again in a moment.",
    ),
)


def upstream_error(exc: openai.APIError, model: str) -> UpstreamError:
    """Map the SDK's exceptions to a kind of failure and a message a person can act on."""
    if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
        cause = _root_cause(exc)
        if isinstance(cause, socket.gaierror):
            return UpstreamError(
                FailureKind.UNREACHABLE, "chatapp could not look up the model server's address."
            )
        if isinstance(cause, ssl.SSLError):
            return UpstreamError(
                FailureKind.UNREACHABLE, "The secure (TLS) connection to the model server failed."
            )
    for kinds, kind, template in _ERRORS:
        if isinstance(exc, kinds):
            status = getattr(exc, "status_code", None)
            return UpstreamError(kind, template.format(model=model, status=status, detail=_detail(exc)))
    return UpstreamError(FailureKind.SERVER_ERROR, f"The model server reported an error: {_detail(exc)}")


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return seen


def _detail(exc: openai.APIError) -> str:
    message = exc.body.get("message") if isinstance(exc.body, dict) else None
    return message if isinstance(message, str) else exc.message
