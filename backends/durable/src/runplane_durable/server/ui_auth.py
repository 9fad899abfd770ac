"""How a browser is let in and kept safe: the web UI's sign-in cookie, and the refusal of
state-changing requests sent from another site (CSRF).

A browser cannot put `Authorization: Bearer` on a page it navigates to or on an `EventSource`,
so with `RUNPLANE_TOKEN` set the UI signs in once: /ui/login takes the token and sets the
cookie `runplane_ui` (HttpOnly, SameSite=Strict), whose value is a MAC of the token (the token
itself is never stored in the browser). `BrowserGuard` sits outside the API's `Guard`: a request
with a valid cookie and no Authorization header of its own is given the server's bearer token,
so every route, the JSON API and its SSE included, sees one kind of credential.

Every POST, PUT, PATCH or DELETE a browser sends carries `Origin` (and `Sec-Fetch-Site`); one
from another origin is refused with a 403 `cross_site`, whatever it carries, so a page elsewhere
cannot cancel or approve a run through a visitor's browser, with or without a token. Programs
(httpx, the CLI, the remote engine) send neither header and are not affected.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .responses import HTTPProblem

__all__ = ["COOKIE", "BrowserGuard", "cookie_value", "cross_site", "has_access", "session_valid"]

COOKIE = "runplane_ui"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of requests a page of this very origin (or the user, typing the URL) made.
_SAME = frozenset({"same-origin", "none"})


def cookie_value(token: str) -> str:
    """The sign-in cookie's value for `token`: a MAC, so the cookie does not hold the token, and
    a server restarted with another token refuses every cookie made for the old one."""
    return hmac.new(token.encode("utf-8"), b"runplane web ui session", hashlib.sha256).hexdigest()


def session_valid(token: str, cookie: str | None) -> bool:
    return cookie is not None and hmac.compare_digest(
        cookie.encode("utf-8", "replace"), cookie_value(token).encode("ascii")
    )


def has_access(request: Request, token: str | None) -> bool:
    """Whether a request may see the UI's pages: no token is set, or it carries the server's
    bearer token (its own, or the one `BrowserGuard` gave it for a valid cookie)."""
    if token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("latin-1", "replace"), token.encode("utf-8")
    )


def cross_site(headers: Headers) -> str | None:
    """Why a state-changing request is from another site (None: it is not, or it is no
    browser's). `Origin` must name the host the request was sent to (its Host header)."""
    origin = headers.get("origin")
    if origin is not None:
        if origin == "null":
            return "its Origin is null (a sandboxed or privacy-sensitive context)"
        parts = urlsplit(origin)
        host = headers.get("host", "")
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
            return f"it comes from {origin}, not from this server ({host})"
        return None
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in _SAME:
        return f"the browser says it is {fetch_site}"
    return None


class BrowserGuard:
    """Pure ASGI middleware, outermost: refuses cross-site state-changing requests, and turns a
    valid sign-in cookie into the bearer token for the API's `Guard` behind it."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if scope["method"] not in SAFE_METHODS:
                why = cross_site(headers)
                if why is not None:
                    problem = HTTPProblem(
                        403,
                        "cross_site",
                        f"refused: this request would change something, and {why}. Use the "
                        "server's own pages, or send it from a program (no Origin header).",
                    )
                    await problem.response()(scope, receive, send)
                    return
            if self.token is not None and "authorization" not in headers:
                scope = self._signed_in(scope, headers)
        await self.app(scope, receive, send)

    def _signed_in(self, scope: Scope, headers: Headers) -> Scope:
        assert self.token is not None
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in _SAME:
            return scope  # a cookie another site's page made the browser send stands for nothing
        if not session_valid(self.token, Request(scope).cookies.get(COOKIE)):
            return scope
        bearer = (b"authorization", b"Bearer " + self.token.encode("utf-8"))
        return {**scope, "headers": [*scope["headers"], bearer]}
