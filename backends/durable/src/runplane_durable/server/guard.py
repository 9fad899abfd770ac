"""What every request passes before any route sees it: the bearer token, and the declared size
of its body.

With a token set (`RUNPLANE_TOKEN`), every call under /api/v1 and /metrics must carry
`Authorization: Bearer TOKEN`: none is a 401, another token a 403 (compared in constant time, so
the answer's timing says nothing about how much of a guess was right). /healthz stays open, for
load balancers. A body declared (Content-Length) over the limit is refused with a 413 before it
is read; one that streams past it (chunked, or longer than declared) raises the same 413 from
`receive` in the endpoint reading it. (Starlette's own `max_body_size` would do the second, but
it answers the first with a plain-text 413 in place of the API's error body.)
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .responses import HTTPProblem, too_large

__all__ = ["PROTECTED", "Guard", "protected"]

# Paths that need the token when one is set (a prefix ending in "/", or an exact path).
PROTECTED = ("/api/v1/", "/api/v1", "/metrics")


def protected(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PROTECTED)


def _route_path(scope: Scope) -> str:
    """The path the app routes on: without the prefix it is mounted under (`root_path`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class Guard:
    """Pure ASGI middleware (a streamed response, SSE, passes through untouched)."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = None if token is None else token.encode("utf-8")
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = self._refusal(scope)
            if problem is not None:
                await problem.response()(scope, receive, send)
                return
            receive = self._limited(receive)
        await self.app(scope, receive, send)

    def _limited(self, receive: Receive) -> Receive:
        read = 0

        async def limited() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_body_bytes:
                    raise too_large(self.max_body_bytes)
            return message

        return limited

    def _refusal(self, scope: Scope) -> HTTPProblem | None:
        headers = Headers(scope=scope)
        if self.token is not None and protected(_route_path(scope)):
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                return HTTPProblem(
                    401,
                    "unauthorized",
                    "this server needs a token: send 'Authorization: Bearer TOKEN' with the "
                    "token it was started with (RUNPLANE_TOKEN)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not hmac.compare_digest(given.strip().encode("latin-1"), self.token):
                return HTTPProblem(
                    403,
                    "forbidden",
                    "the bearer token is not this server's (RUNPLANE_TOKEN); check the token "
                    "the client sends",
                )
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return too_large(self.max_body_bytes)
        return None
