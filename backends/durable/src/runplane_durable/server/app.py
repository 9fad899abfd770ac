"""The server's Starlette app: the routes of the JSON API over one engine and the web UI's, what
guards them (token, body size, cross-site requests), how errors are answered, and its lifespan."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import lazy_errors as errors
from ..engine import Engine, Notifying
from . import (
    approvals_api,
    conversations_api,
    metrics,
    openapi,
    runs_api,
    sessions_api,
    ui,
    work_api,
)
from .guard import Guard
from .responses import (
    DEFAULT_MAX_BODY_BYTES,
    HTTPProblem,
    JSONResponse,
    error_response,
    http_exception_response,
)
from .routing import merge_methods
from .ui_auth import BrowserGuard

__all__ = ["ServerSettings", "create_app"]


@dataclass(frozen=True)
class ServerSettings:
    """What the app enforces: the bearer token every API call must carry (None: none needed,
    allowed on loopback only; `cli/server.py` refuses otherwise) and the largest request body."""

    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # How often a live event stream asks the engine for new events where the store cannot say
    # when there are some (SQLite); where it can (PostgreSQL's NOTIFY, `engine.Notifying`), a
    # stream waits for its word, or at most `fallback_poll_seconds` (a notification lost while
    # the listener reconnects delays an event, never loses it). Then how long a stream may stay
    # silent before a keep-alive comment (proxies close idle connections).
    poll_seconds: float = 0.2
    fallback_poll_seconds: float = 2.0
    keepalive_seconds: float = 15.0

    def __post_init__(self) -> None:
        for name in ("poll_seconds", "fallback_poll_seconds", "keepalive_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def create_app(engine: Engine, settings: ServerSettings | None = None) -> Starlette:
    """The app serving `engine`; the engine is disposed of when the app shuts down."""
    settings = settings or ServerSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The engine's one listener for the event streams (PostgreSQL), on the server's loop.
        if isinstance(engine, Notifying):
            app.state.event_feed = await engine.event_feed()
        try:
            yield
        finally:
            await engine.dispose()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "engine": engine.describe()})

    async def durable_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.DurableError)
        return error_response(exc)

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPProblem)
        return exc.response()

    async def http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return http_exception_response(exc.status_code, exc.detail, exc.headers)

    app = Starlette(
        routes=merge_methods(
            [
                Route("/healthz", healthz),
                Route("/metrics", metrics.metrics),
                Route(openapi.PATH, openapi.document),
                *runs_api.routes(),
                *sessions_api.routes(),
                *work_api.routes(),
                *approvals_api.routes(),
                *conversations_api.routes(),
                *ui.routes(),  # the web UI: / and /runs/{run_id}, the rest under /ui/
            ]
        ),
        lifespan=lifespan,
        middleware=[
            # Outermost: refuses cross-site writes, and lets the UI's sign-in cookie stand for
            # the token (ui_auth.py).
            Middleware(BrowserGuard, token=settings.token),
            Middleware(Guard, token=settings.token, max_body_bytes=settings.max_body_bytes),
        ],
        exception_handlers={
            HTTPProblem: problem,
            HTTPException: http_exception,
            # Looked up when the app is made: the server imports the SDK with its errors.
            errors.DurableError: durable_error,
        },
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.event_feed = None  # the streams poll until the lifespan starts a feed
    return app
