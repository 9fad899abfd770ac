"""Durable sessions over HTTP, under /api/v1/durable-sessions/{session_id}: what a
`RemoteEngine`'s `DurableSession` asks for (read the items, append some under a write key, pop
the last, clear).

A write carries its key, so one sent again after its answer was lost is recognised by the
database and writes nothing (`Engine.add_session_items`). The session id is one percent-encoded
path segment (`routing.RawPathRoute`), so any storable id names exactly one session.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..names import MAX_JOURNAL_KEY
from .context import engine_of
from .query import body_object, count_param, query
from .responses import JSONResponse, bad_request, read_json
from .routing import RawPathRoute, path_param

__all__ = ["ITEMS_LIMIT", "routes"]

# ?limit= of a read: (lowest, default, highest); the default 0 means "every item".
ITEMS_LIMIT = (0, 0, 1_000_000)


def _session_id(request: Request) -> str:
    return path_param(request.path_params, "session_id")


async def get_items(request: Request) -> Response:
    """GET .../items[?limit=N] -> {"items": [...]}, oldest first (the latest N when given)."""
    params = query(request, ("limit",))
    limit = count_param(params, "limit", *ITEMS_LIMIT) if "limit" in params else None
    items = await engine_of(request).session_items(_session_id(request), limit=limit)
    return JSONResponse({"items": items})


async def add_items(request: Request) -> Response:
    """POST .../items[?retry=1] {"items": [...], "write_key": str} -> {"written": bool}."""
    query(request, ("retry",))
    body = body_object(
        await read_json(request), ("items", "write_key"), required=("items", "write_key")
    )
    items, key = body["items"], body["write_key"]
    if not isinstance(items, list):
        raise bad_request("items must be a list of session items", member="items")
    if not isinstance(key, str) or not key or len(key) > MAX_JOURNAL_KEY:
        raise bad_request(
            f"write_key must be a non-empty string of at most {MAX_JOURNAL_KEY} characters",
            member="write_key",
        )
    written = await engine_of(request).add_session_items(_session_id(request), items, write_key=key)
    return JSONResponse({"written": written})


async def pop_item(request: Request) -> Response:
    """POST .../pop -> {"item": the item removed, or null}."""
    query(request, ())
    return JSONResponse({"item": await engine_of(request).pop_session_item(_session_id(request))})


async def clear(request: Request) -> Response:
    """POST .../clear -> {"cleared": true}."""
    query(request, ())
    await engine_of(request).clear_session(_session_id(request))
    return JSONResponse({"cleared": True})


async def items(request: Request) -> Response:
    return await (get_items(request) if request.method == "GET" else add_items(request))


def routes() -> list[BaseRoute]:
    base = "/api/v1/durable-sessions/{session_id}"
    return [
        RawPathRoute(f"{base}/items", items, methods=["GET", "POST"]),
        RawPathRoute(f"{base}/pop", pop_item, methods=["POST"]),
        RawPathRoute(f"{base}/clear", clear, methods=["POST"]),
    ]
