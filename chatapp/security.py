"""Browser-facing protections: the response headers that let the browser enforce what the
page promises, and the refusal of state-changing requests from other sites.

A strict Content-Security-Policy: the page loads scripts, styles and
connections only from its own origin and runs no inline script (chat.js takes
its configuration from a JSON data block, and model output only ever becomes
text), so even text that slips into the page as HTML could not run.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Request, Response, request

from .errors import ApiError
from .protocol import ErrorCode

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def register_security(app: Flask) -> None:
    """The headers on every response, and the refusal of every cross-site request that changes
    state, whichever blueprint it reaches (after the access check, registered before)."""

    @app.before_request
    def _only_from_this_site() -> None:
        if request.url_rule is not None:  # an unknown path or method stays a 404 or 405
            reject_cross_site(request)

    @app.after_request
    def _add_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def reject_cross_site(request: Request) -> None:
    """403 for a state-changing request that another site's page made.

    Browsers say where a request comes from: `Sec-Fetch-Site` (all current ones),
    else `Origin`. Clients that send neither (curl, SDKs, other servers) are not
    browsers riding on a user's session, and pass.
    """
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        allowed = site in ("same-origin", "none")
    else:
        origin = request.headers.get("Origin")
        allowed = origin is None or urlsplit(origin).netloc == request.host
    if not allowed:
        raise ApiError(403, ErrorCode.CROSS_SITE, "Requests from other sites are not accepted.")
