"""What a request is about: the engine the app serves, and the run its path names."""

from __future__ import annotations

from starlette.requests import Request

from ..engine import Engine
from ..records import RunRecord
from .routing import path_param

__all__ = ["engine_of", "known_run", "run_id_of"]


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def run_id_of(request: Request) -> str:
    """The run id in the path, decoded (`routing.RawPathRoute`)."""
    return path_param(request.path_params, "run_id")


async def known_run(request: Request) -> RunRecord:
    """The run the path names (the engine's RunNotFoundError, a 404, if there is none)."""
    return await engine_of(request).get_run(run_id_of(request))
