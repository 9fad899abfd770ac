"""The write side of the JSON API under /api/v1: what a `RemoteEngine`'s run sessions ask for
(open a run, append a step, heartbeat, finish, release)."""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["routes"]


def routes() -> list[BaseRoute]:
    return []
