"""The approvals under /api/v1/runs/{id}: the calls a run waits on, deciding them, and the
verified snapshot a client resumes the run from (its seal checked here, by the server's engine:
the key never leaves the server)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..serde import storable_text
from .context import engine_of, run_id_of
from .query import body_object, query
from .responses import JSONResponse, bad_request, read_json
from .routing import RawPathRoute

__all__ = ["routes"]

_DECISIONS = ("approve", "reject")
_MEMBERS = ("call_id", "decision", "always", "message", "decided_by")


async def list_approvals(request: Request) -> Response:
    query(request, ())
    found = await engine_of(request).list_approvals(run_id_of(request))
    return JSONResponse({"approvals": [a.to_json() for a in found]})


def _text(body: dict[str, object], name: str) -> str | None:
    """A member holding text or null; text any database stores (a NUL or a lone surrogate
    kept as its escape, so it names nothing stored rather than failing)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(
            f"{name} must be a non-empty string or null, got {value!r:.80}", member=name
        )
    return storable_text(value)


async def decide(request: Request) -> Response:
    query(request, ())
    body = body_object(await read_json(request), _MEMBERS, required=("decision",))
    decision = body["decision"]
    if decision not in _DECISIONS:
        raise bad_request(
            f"decision must be one of: {', '.join(_DECISIONS)}; got {decision!r:.80}",
            member="decision",
        )
    always = body.get("always", False)
    if not isinstance(always, bool):
        raise bad_request(f"always must be true or false, got {always!r:.80}", member="always")
    call_id, message = _text(body, "call_id"), _text(body, "message")
    if decision == "approve":
        message = None  # a message is a rejection's: what the model is told instead
    # Who decided: the identity the CLI or Runner says it is, and the client it came from.
    client = request.client.host if request.client is not None else "unknown client"
    said = _text(body, "decided_by")
    by = f"{said} via {client}" if said is not None else f"api client {client}"
    run, approvals = await engine_of(request).decide(
        run_id_of(request),
        call_id,
        approve=decision == "approve",
        always=always,
        message=message,
        by=by,
    )
    return JSONResponse({"run": run.to_json(), "approvals": [a.to_json() for a in approvals]})


async def snapshot(request: Request) -> Response:
    """The run's verified snapshot (`Engine.load_snapshot`): {"snapshot": Snapshot | null}."""
    query(request, ())
    found = await engine_of(request).load_snapshot(run_id_of(request))
    return JSONResponse({"snapshot": None if found is None else found.to_json()})


async def approvals(request: Request) -> Response:
    """One route for both methods, so a 405 lists both in its `Allow`."""
    if request.method == "POST":
        return await decide(request)
    return await list_approvals(request)


def routes() -> list[BaseRoute]:
    return [
        RawPathRoute("/api/v1/runs/{run_id}/approvals", approvals, methods=["GET", "POST"]),
        RawPathRoute("/api/v1/runs/{run_id}/snapshot", snapshot, methods=["GET"]),
    ]
