"""Routes matched on the path as the client sent it, so a run id may hold any character; and
routes of several modules on one path, merged.

Clients percent-encode a run id into one path segment (`urllib.parse.quote(run_id, safe="")`,
and its dots as `%2E`: HTTP clients drop the segments `.` and `..` from a path).
Starlette matches routes against `scope["path"]`, which the server has already decoded: the run
`a/events` arrives as `/api/v1/runs/a%2Fevents`, decodes to `/api/v1/runs/a/events`, and would
match the events of run `a`. A `RawPathRoute` matches against `scope["raw_path"]` instead, where
the id is still one segment, and decodes each parameter itself (UTF-8, strictly: an id that is
not UTF-8 text is refused, never replaced).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote_to_bytes

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from .responses import HTTPProblem

__all__ = ["RawPathRoute", "merge_methods", "path_param"]


class RawPathRoute(Route):
    """A `Route` whose `{name}` parameters each match one still-encoded segment of the raw path
    (use the default `str` convertor: no `/`); the endpoint sees them decoded. Without a raw path
    (an ASGI server that gives none) it matches the decoded path, as a plain route does."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw is None:
            return super().matches(scope)
        path = raw.decode("latin-1").partition("?")[0]
        root = quote(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]
        match, child = super().matches({**scope, "path": path, "root_path": ""})
        if match is not Match.NONE:
            params: dict[str, Any] = child["path_params"]
            child["path_params"] = {
                name: _decoded(value) if name in self.param_convertors else value
                for name, value in params.items()
            }
        return match, child


# A parameter whose escapes are not UTF-8: the endpoint refuses it (an HTTPProblem raised while
# matching would bypass the app's exception handlers).
undecodable = "\x00undecodable"


def _decoded(segment: str) -> str:
    try:
        return unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        return undecodable


def path_param(request_params: dict[str, Any], name: str) -> str:
    """The decoded parameter `name`; a 400 if its escapes were not UTF-8 text."""
    value: str = request_params[name]
    if value == undecodable:
        raise HTTPProblem(
            400,
            "bad_request",
            f"the {name} in the path is not percent-encoded UTF-8 text; encode it with "
            "urllib.parse.quote(value, safe='')",
            parameter=name,
        )
    return value


def merge_methods(routes: list[BaseRoute]) -> list[BaseRoute]:
    """`routes` with the plain `Route`s of one path (one per method, from different modules:
    GET /api/v1/runs lists, POST queues) made one route that dispatches on the method, so a
    405 answers with every method of the path in its `Allow`, as the document lists them."""
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        if type(route) is Route:
            by_path.setdefault(route.path, []).append(route)
    merged: list[BaseRoute] = []
    for route in routes:
        if type(route) is not Route or len(by_path[route.path]) == 1:
            merged.append(route)
        elif by_path[route.path][0] is route:
            merged.append(_dispatching(route.path, by_path[route.path]))
    return merged


def _dispatching(path: str, routes: list[Route]) -> Route:
    endpoints = {m: r.endpoint for r in routes for m in r.methods or () if m != "HEAD"}

    async def endpoint(request: Request) -> Response:
        response: Response = await endpoints[request.method](request)
        return response

    return Route(path, endpoint, methods=sorted(endpoints))
