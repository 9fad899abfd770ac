"""The read and admin side of the JSON API under /api/v1: runs (filtered, paged), one run, its
journal, events and attempts, and the admin calls (cancel a run, prune old ones).

Every route that names a run matches the raw path (`routing.RawPathRoute`), so any storable run
id, percent-encoded into one segment, names exactly one run. An unknown run is a 404 with the
engine's own `run_not_found` error.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import lazy_errors as errors
from ..events import AttemptEnded, AttemptStarted, parse
from ..records import (
    CANCEL_MODES,
    DEFAULT_QUEUE,
    MAX_STORED_INT,
    EventRecord,
    Requester,
    run_cursor,
)
from ..serde import storable_text
from . import sse
from .context import engine_of, known_run, run_id_of
from .query import (
    EVENTS_LIMIT,
    MAX_SEQ,
    RUNS_LIMIT,
    body_object,
    count_param,
    query,
    status_param,
    time_param,
    time_value,
)
from .responses import JSONResponse, bad_request, read_json
from .routing import RawPathRoute

__all__ = ["LIST_RUNS_PARAMETERS", "attempts_of", "routes"]

LIST_RUNS_PARAMETERS = ("limit", "status", "agent", "created_after", "created_before", "cursor")


async def list_runs(request: Request) -> Response:
    params = query(request, LIST_RUNS_PARAMETERS)
    limit = count_param(params, "limit", *RUNS_LIMIT)
    try:
        # One more than the page: whether there is a next page, without asking again.
        found = await engine_of(request).list_runs(
            limit=limit + 1,
            status=status_param(params),
            agent=params.get("agent"),
            created_after=time_param(params, "created_after"),
            created_before=time_param(params, "created_before"),
            cursor=params.get("cursor"),
        )
    except errors.UnstorableNameError:
        raise  # an agent name no run can have: the engine's own 400
    except ValueError as exc:  # the cursor: the only argument not checked above
        raise bad_request(str(exc), parameter="cursor") from exc
    page = found[:limit]
    following = run_cursor(page[-1]) if len(found) > limit else None
    return JSONResponse({"runs": [r.to_json() for r in page], "next_cursor": following})


async def get_run(request: Request) -> Response:
    query(request, ())
    return JSONResponse((await known_run(request)).to_json())


async def get_journal(request: Request) -> Response:
    query(request, ())
    run = await known_run(request)
    journal = await engine_of(request).read_journal(run.id)
    return JSONResponse({"journal": [entry.to_json() for entry in journal]})


async def get_events(request: Request) -> Response:
    params = query(request, ("after", "limit"))
    after = count_param(params, "after", 0, 0, MAX_SEQ)
    limit = count_param(params, "limit", *EVENTS_LIMIT)
    run = await known_run(request)
    events = await engine_of(request).list_events(run.id, after=after, limit=limit)
    return JSONResponse({"events": [e.to_json() for e in events]})


async def get_attempts(request: Request) -> Response:
    query(request, ())
    run = await known_run(request)
    events = await engine_of(request).list_events(run.id)
    return JSONResponse({"attempts": attempts_of(events)})


def attempts_of(events: list[EventRecord]) -> list[dict[str, Any]]:
    """Each attempt of the run, in order: {"attempt", "started", "ended"}, `started` and `ended`
    its `attempt_started` and `attempt_ended` payloads (as `events` reads them) with their
    event's `seq`, `ended` null while it runs (or if its end was never found)."""
    found: list[dict[str, Any]] = []
    by_number: dict[int | None, dict[str, Any]] = {}
    for record in events:
        event = parse(record)
        if not isinstance(event, (AttemptStarted, AttemptEnded)):
            continue
        seen = {**event.to_payload(), "seq": record.seq}
        if isinstance(event, AttemptStarted) or event.attempt not in by_number:
            attempt = {"attempt": event.attempt, "started": None, "ended": None}
            found.append(attempt)
            by_number[event.attempt] = attempt
        by_number[event.attempt]["started" if isinstance(event, AttemptStarted) else "ended"] = seen
    return found


async def cancel_run(request: Request) -> Response:
    query(request, ())
    run_id = run_id_of(request)
    body = body_object(await read_json(request, empty={}), ("mode", "requested_by"))
    mode = body.get("mode", "immediate")
    if mode not in CANCEL_MODES:
        raise bad_request(
            f"mode must be one of: {', '.join(CANCEL_MODES)}; got {mode!r}", member="mode"
        )
    record = await engine_of(request).cancel_run(run_id, mode=mode, by=_asker(request, body))
    return JSONResponse(record.to_json())


def _asker(request: Request, body: dict[str, Any]) -> Requester:
    """Who asks: the process the client says it is (`requested_by`: host, pid, user; a browser
    or plain HTTP client says nothing), through this server from the client's address."""
    client = request.client.host if request.client is not None else "unknown address"
    via = f"runplane server on {socket.gethostname()}, client {client}"
    said = body.get("requested_by")
    if said is None:
        return Requester(None, via=via)
    member = "requested_by"
    if not isinstance(said, dict) or set(said) - {"host", "pid", "user"}:
        raise bad_request(
            f"{member} must be an object of host, pid and user, got {said!r:.80}", member=member
        )
    host, pid, user = said.get("host"), said.get("pid"), said.get("user")
    if isinstance(pid, float) and pid.is_integer():  # JSON's integer: 66.0 is one too
        pid = int(pid)
    for name, value in (("host", host), ("user", user)):
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 255):
            raise bad_request(
                f"{member}.{name} must be a string of 1 to 255 characters or null, "
                f"got {value!r:.80}",
                member=member,
            )
    if pid is not None and (
        isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid <= MAX_STORED_INT
    ):
        raise bad_request(
            f"{member}.pid must be an integer from 0 to {MAX_STORED_INT} or null, got {pid!r:.80}",
            member=member,
        )
    return Requester(
        None if host is None else storable_text(host),
        pid,
        None if user is None else storable_text(user),
        via=via,
    )


async def fork_run(request: Request) -> Response:
    """POST /api/v1/runs/{run_id}/fork {"at", "run_id", "queue"} -> the fork (`Engine.fork_run`).
    Sent again with the same body, it answers the fork made the first time."""
    query(request, ())
    run_id = run_id_of(request)
    body = body_object(
        await read_json(request), ("at", "run_id", "queue"), required=("at", "run_id")
    )
    at = body["at"]
    if isinstance(at, float) and at.is_integer():  # JSON's integer: 134.0 is one too
        at = int(at)
    if isinstance(at, bool) or not isinstance(at, int):  # its range: the engine's ForkStepError
        raise bad_request(f"at must be a step number (an integer); got {at!r}", member="at")
    new_run_id = body["run_id"]
    if not isinstance(new_run_id, str):
        raise bad_request(f"run_id must be a string; got {new_run_id!r}", member="run_id")
    queue = body.get("queue", DEFAULT_QUEUE)
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise bad_request(f"queue must be a name or null; got {queue!r}", member="queue")
    record = await engine_of(request).fork_run(run_id, at=at, new_run_id=new_run_id, queue=queue)
    return JSONResponse(record.to_json())


async def prune(request: Request) -> Response:
    query(request, ())
    body = body_object(
        await read_json(request), ("finished_before",), required=("finished_before",)
    )
    finished_before = time_value(body, "finished_before")
    deleted = await engine_of(request).prune(finished_before=finished_before)
    return JSONResponse({"deleted": deleted})


def _run_route(path: str, endpoint: Callable[[Request], Any], method: str = "GET") -> BaseRoute:
    return RawPathRoute(f"/api/v1/runs/{{run_id}}{path}", endpoint, methods=[method])


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/runs", list_runs, methods=["GET"]),
        _run_route("", get_run),
        _run_route("/journal", get_journal),
        _run_route("/events", get_events),
        _run_route("/events/stream", sse.stream_events),
        _run_route("/attempts", get_attempts),
        _run_route("/cancel", cancel_run, "POST"),
        _run_route("/fork", fork_run, "POST"),
        Route("/api/v1/prune", prune, methods=["POST"]),
    ]
