"""Request errors: the stable codes, `ApiError`, and the one place they become JSON.

Every error a client can get before a stream starts is answered as
`{"error": {"code": "<stable code>", "message": "<what is wrong>"}}` with a 4xx
or 5xx status. Codes are part of the public contract (docs/api.md): add new
ones, never rename.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class Code:
    """Stable error codes of the JSON error body."""

    INVALID_JSON = "invalid_json"
    INVALID_BODY = "invalid_body"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BODY_TOO_LARGE = "body_too_large"
    MISSING_MESSAGES = "missing_messages"
    INVALID_MESSAGE = "invalid_message"
    INVALID_ROLE = "invalid_role"
    INVALID_CONTENT = "invalid_content"
    LAST_MESSAGE_NOT_USER = "last_message_not_user"
    EMPTY_MESSAGE = "empty_message"
    TOO_MANY_MESSAGES = "too_many_messages"
    MESSAGE_TOO_LONG = "message_too_long"
    CONVERSATION_TOO_LONG = "conversation_too_long"
    INVALID_MAX_TOKENS = "invalid_max_tokens"
    INVALID_TEMPERATURE = "invalid_temperature"
    INVALID_MODEL = "invalid_model"
    UNKNOWN_MODEL = "unknown_model"
    STREAM_NOT_FOUND = "stream_not_found"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INTERNAL_ERROR = "internal_error"
    SHUTTING_DOWN = "shutting_down"
    SERVER_BUSY = "server_busy"
    TOO_MANY_STREAMS = "too_many_streams"
    CROSS_SITE = "cross_site_request"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"


class ApiError(Exception):
    """An error answered as JSON with an HTTP status and a stable code."""

    def __init__(self, status: int, code: str, message: str, *, retry_after_s: int | None = None) -> None:
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
    404: (Code.NOT_FOUND, "No such endpoint."),
    405: (Code.METHOD_NOT_ALLOWED, "This endpoint does not accept that HTTP method."),
    413: (Code.BODY_TOO_LARGE, "The request body is too large."),
    415: (Code.UNSUPPORTED_MEDIA_TYPE, "Send the body as Content-Type: application/json."),
    429: (Code.RATE_LIMITED, "Too many requests in a short time. Wait a moment, then try again."),
}


def register_error_handlers(app: Flask) -> None:
    """Answer every error as the JSON error body, pages and API alike."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> tuple[Response, int]:
        return error.to_response()

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
        return error_response(500, Code.INTERNAL_ERROR, "Something went wrong on the server.")
