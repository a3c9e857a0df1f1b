"""Request errors: `ApiError`, and the one place they become JSON.

Every error a client can get before a stream starts is answered as
`{"error": {"code": "<stable code>", "message": "<what is wrong>"}}` with a 4xx
or 5xx status. The codes are `protocol.ErrorCode`, part of the public contract.
What the inner layers refuse with typed exceptions is worded here, once: the
store's errors (`store_error`) and admission's refusals (`refusal_error`).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from .protocol import ErrorCode
from .store import NOT_AN_ANSWER, NOT_IN_CONVERSATION
from .store.errors import (
    ConversationNotFound,
    ConversationTooLong,
    InvalidParent,
    MessageNotFound,
    StoreError,
    WrongRole,
)
from .streaming.admission import ClientBusy, Refused, ShuttingDown, WorkerFull

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON with an HTTP status and a stable code."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, *, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def to_response(self) -> tuple[Response, int]:
        response, status = error_response(self.status, self.code, self.message)
        if self.retry_after_s is not None:
            response.headers["Retry-After"] = str(self.retry_after_s)
        return response, status


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error={"code": code, "message": message}), status


# Werkzeug raises these itself (routing, the body size limit); they get the same JSON shape.
_HTTP_CODES = {
    404: (ErrorCode.NOT_FOUND, "No such endpoint."),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "This endpoint does not accept that HTTP method."),
    # chatapp's gunicorn worker raises it for a body that stopped arriving (serving/body_clock.py).
    408: (ErrorCode.REQUEST_TIMEOUT, "The request body did not arrive in time. Send it again."),
    413: (ErrorCode.BODY_TOO_LARGE, "The request body is too large."),
    415: (ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send the body as Content-Type: application/json."),
    429: (ErrorCode.RATE_LIMITED, "Too many requests in a short time. Wait a moment, then try again."),
}


def store_error(error: StoreError) -> ApiError:
    """What the store refused, as the client's error."""
    if isinstance(error, ConversationNotFound):
        return ApiError(
            404, ErrorCode.CONVERSATION_NOT_FOUND, "No conversation has that id; it may have been deleted."
        )
    if isinstance(error, MessageNotFound):
        return ApiError(404, ErrorCode.MESSAGE_NOT_FOUND, "No message of this conversation has that id.")
    if isinstance(error, InvalidParent):
        message = _PARENT_PROBLEMS.get(error.reason, f"parent_id cannot be used here: {error.reason}.")
        return ApiError(400, ErrorCode.INVALID_PARENT, message)
    if isinstance(error, ConversationTooLong):
        return ApiError(
            400,
            ErrorCode.CONVERSATION_TOO_LONG,
            f"With this message the conversation is {error.total} characters long; "
            f"the limit is {error.limit}. Start a new chat.",
        )
    if isinstance(error, WrongRole):
        return ApiError(400, ErrorCode.NOT_AN_ANSWER, "Only an answer can be regenerated.")
    return ApiError(400, ErrorCode.INVALID_BODY, str(error))


# The store's reasons why a parent cannot take a new message (InvalidParent.reason), in the API's words.
_PARENT_PROBLEMS = {
    NOT_IN_CONVERSATION: "parent_id is not a message of this conversation.",
    NOT_AN_ANSWER: "A message follows an answer: parent_id must name an answer.",
}


def refusal_error(refused: Refused) -> ApiError:
    """Why a new stream was not admitted (streaming/admission.py), as the client's error."""
    if isinstance(refused, ShuttingDown):
        return ApiError(
            503, ErrorCode.SHUTTING_DOWN, "This server is restarting. Try again in a moment.", retry_after_s=2
        )
    if isinstance(refused, ClientBusy):
        return ApiError(
            429,
            ErrorCode.TOO_MANY_STREAMS,
            "Too many answers are streaming for you at once. Stop one, or wait for one to finish.",
            retry_after_s=5,
        )
    assert isinstance(refused, WorkerFull), refused
    return ApiError(
        503, ErrorCode.SERVER_BUSY, "The server is at capacity. Try again in a moment.", retry_after_s=5
    )


def shared_state_unavailable() -> ApiError:
    """The stream asked about runs in another process, and Redis cannot be reached."""
    return ApiError(
        503,
        ErrorCode.SHARED_STATE_UNAVAILABLE,
        "That answer runs on another server process, which cannot be reached right now. Try again.",
        retry_after_s=2,
    )


def register_error_handlers(app: Flask) -> None:
    """Answer every error as the JSON error body, pages and API alike."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> tuple[Response, int]:
        return error.to_response()

    @app.errorhandler(StoreError)
    def _store_error(error: StoreError) -> tuple[Response, int]:
        return store_error(error).to_response()

    @app.errorhandler(Refused)
    def _refused(refused: Refused) -> tuple[Response, int]:
        return refusal_error(refused).to_response()

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        code, message = _HTTP_CODES.get(status, (f"http_{status}", error.description or ""))
        response, status = error_response(status, code, message)
        # Keep headers werkzeug attached, such as Allow on a 405.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response(500, ErrorCode.INTERNAL_ERROR, "Something went wrong on the server.")
