"""The write side of the JSON API under /api/v1/sessions: what a `RemoteEngine`'s run sessions
ask for (open a run, append a step, heartbeat, finish, release, is a stop asked for).

Stateless: a request carries everything its fencing needs (run id, lease holder, lease length,
seqs; see `writes.py`), and the engine applies it in one transaction. So any server on the
database answers any request, and one restarted mid-run goes on where the last left off. A
write sent again after its answer was lost carries `?retry=1`: one that committed the first time
is recognised and answered as committed, never written twice.
"""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import lazy_errors as errors
from ..names import check_text
from ..records import RunSpec
from ..session import SessionHost
from ..writes import write_from_json
from .responses import HTTPProblem, JSONResponse, read_json

__all__ = ["routes"]


def _host(request: Request) -> SessionHost:
    engine = request.app.state.engine
    if not callable(getattr(engine, "apply", None)) or not callable(
        getattr(engine, "open_for", None)
    ):
        raise HTTPProblem(
            501,
            "no_sessions",
            f"this server's engine ({engine.describe()}) cannot run sessions for clients; serve "
            "a database (runplane server --database URL)",
        )
    return cast(SessionHost, engine)


async def _body(request: Request) -> dict[str, Any]:
    data = await read_json(request, max_bytes=request.app.state.settings.max_body_bytes)
    if not isinstance(data, dict):
        raise HTTPProblem(400, "bad_request", "the request body must be a JSON object")
    return data


def _bad(exc: ValueError) -> HTTPProblem:
    return HTTPProblem(400, "bad_request", str(exc))


async def open_session(request: Request) -> Response:
    """POST /api/v1/sessions {"spec": RunSpec, "owner", "lease_seconds", "dead_holder"}
    -> the opening (`writes.Opened` JSON)."""
    host = _host(request)
    data = await _body(request)
    try:
        unknown = sorted(set(data) - {"spec", "owner", "lease_seconds", "dead_holder"})
        if unknown:
            raise ValueError(f"unknown members {', '.join(unknown)}")
        spec = RunSpec.from_json(data.get("spec"))
        owner = data.get("owner")
        lease = data.get("lease_seconds")
        dead = data.get("dead_holder")
        if not isinstance(owner, str) or not owner:
            raise ValueError("'owner' must be the lease holder's name, a non-empty string")
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or lease <= 0:
            raise ValueError("'lease_seconds' must be a positive number")
        if dead is not None and not isinstance(dead, str):
            raise ValueError("'dead_holder' must be a holder's name or null")
    except ValueError as exc:
        raise _bad(exc) from exc
    check_text(owner, "lease holder")  # an UnstorableNameError (400) names what is wrong
    if dead is not None:
        check_text(dead, "dead holder")
    opened = await host.open_for(spec, owner=owner, lease_seconds=float(lease), dead_holder=dead)
    return JSONResponse(opened.to_json())


async def write(request: Request) -> Response:
    """POST /api/v1/sessions/{append|heartbeat|finish|release}[?retry=1] (the write's JSON)
    -> {"ours": true, "cancel_requested": mode or null, "first_event_seq": int}; a lease lost
    is 409 `run_leased` with `taken_over`."""
    host = _host(request)
    data = await _body(request)
    try:
        step = write_from_json(request.path_params["write"], data)
    except ValueError as exc:
        raise _bad(exc) from exc
    retried = request.query_params.get("retry") in ("1", "true")
    found = await host.apply(step, retried=retried)
    if found is None:
        raise errors.RunLeasedError(run_id=step.run_id, taken_over=True)
    cancel, first = found
    return JSONResponse({"ours": True, "cancel_requested": cancel, "first_event_seq": first})


async def cancel_requested(request: Request) -> Response:
    """GET /api/v1/sessions/cancel?run_id=ID -> {"cancel_requested": "immediate" |
    "after_turn" | null}: what a running session polls, cheaper than the whole run."""
    run_id = request.query_params.get("run_id")
    if not run_id:
        raise HTTPProblem(400, "bad_request", "give the run's id: ?run_id=ID")
    return JSONResponse({"cancel_requested": await _host(request).cancel_requested(run_id)})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/sessions", open_session, methods=["POST"]),
        Route("/api/v1/sessions/cancel", cancel_requested, methods=["GET"]),
        Route("/api/v1/sessions/{write}", write, methods=["POST"]),
    ]
