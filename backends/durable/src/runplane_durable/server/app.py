"""The server's Starlette app: the routes of the JSON API over one engine, and its lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import lazy_errors as errors
from ..engine import Engine
from . import runs_api, sessions_api
from .responses import DEFAULT_MAX_BODY_BYTES, HTTPProblem, error_response

__all__ = ["ServerSettings", "create_app"]


@dataclass(frozen=True)
class ServerSettings:
    """What the app enforces: the bearer token every API call must carry (None: none needed,
    allowed on loopback only; `cli/server.py` refuses otherwise) and the largest request body."""

    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


def create_app(engine: Engine, settings: ServerSettings | None = None) -> Starlette:
    """The app serving `engine`; the engine is disposed of when the app shuts down."""
    settings = settings or ServerSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
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

    app = Starlette(
        routes=[Route("/healthz", healthz), *runs_api.routes(), *sessions_api.routes()],
        lifespan=lifespan,
        exception_handlers={
            HTTPProblem: problem,
            # Looked up when the app is made: the server imports the SDK with its errors.
            errors.DurableError: durable_error,
        },
    )
    app.state.engine = engine
    app.state.settings = settings
    return app
