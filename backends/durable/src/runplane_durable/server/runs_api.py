"""The read side of the JSON API under /api/v1: runs, one run, its journal and events."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..engine import Engine

__all__ = ["routes"]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_run(request: Request) -> Response:
    record = await _engine(request).get_run(request.path_params["run_id"])
    return JSONResponse(record.to_json())


def routes() -> list[BaseRoute]:
    return [Route("/api/v1/runs/{run_id:path}", get_run, methods=["GET"])]
