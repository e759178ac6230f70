"""Cross-site request forgery: which state-changing requests with a session cookie may pass.

Two defences, either of which a request with the cookie must pass:

    token     the session's CSRF token, sent as the `X-CSRF-Token` header (the
              console's scripts) or the `csrf_token` form field (its forms); a
              token that is present but wrong is refused outright
    origin    without a token, the browser's own word on where the request comes
              from: `Sec-Fetch-Site` must be `same-origin` or `none`; lacking
              that header, `Origin` must name our own host. A request with
              neither header did not come from a browser, and a forgery always
              does (the rule of Go's `net/http.CrossOriginProtection`).

The session cookie is SameSite=Lax besides, so a cross-site POST carries no
cookie in the first place. Requests authenticated by an API token need none of
this: a browser never adds a bearer token by itself.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TOKEN_HEADER = "x-csrf-token"  # noqa: S105 - a header name
TOKEN_FIELD = "csrf_token"  # noqa: S105 - a form field name
SESSION_KEY = "csrf"
SAME_SITE_FETCH = ("same-origin", "none")


def session_token(connection: HTTPConnection) -> str:
    """The session's CSRF token, made on first use; it lives as long as the session."""
    token = connection.session.get(SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        connection.session[SESSION_KEY] = token
    return token


def is_token_valid(connection: HTTPConnection, submitted: str) -> bool:
    expected = connection.session.get(SESSION_KEY)
    return isinstance(expected, str) and hmac.compare_digest(expected, submitted)


def is_same_origin(connection: HTTPConnection) -> bool:
    """What the browser says of the request's origin; True when no browser said anything."""
    fetch_site = connection.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in SAME_SITE_FETCH
    origin = connection.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == connection.headers.get("host")


def is_request_allowed(connection: HTTPConnection, method: str, form_token: str | None) -> bool:
    """Whether a cookie-authenticated request passes the two defences above."""
    if method in SAFE_METHODS:
        return True
    submitted = connection.headers.get(TOKEN_HEADER) or form_token
    if submitted:
        return is_token_valid(connection, submitted)
    return is_same_origin(connection)
