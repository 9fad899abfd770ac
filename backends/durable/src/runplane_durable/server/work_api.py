"""The workers' side of the JSON API: queued runs (enqueue one, which runs a worker may claim)
and remote tool tasks under their leases (enqueue, read, claim, heartbeat, complete, fail).

What a `RemoteEngine` asks for on behalf of `Runner.start`, `runplane worker` and remote tools.
Stateless as the write side is: a task write carries its lease (task, holder, attempt), which
fences it in the database. A task's result or failure sent again after its answer was lost
(`?retry=1`) is recognised in the task as stored (settled by that very attempt, with that result
or error) and answered as it was the first time, never as a lost lease.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import lazy_errors as errors
from ..names import check_text
from ..records import (
    MAX_STORED_INT,
    RunRecord,
    RunSpec,
    TaskLease,
    TaskResult,
    TaskSpec,
    settled_by,
)
from .context import engine_of
from .query import body_object, query
from .responses import HTTPProblem, JSONResponse, bad_request, read_json
from .routing import RawPathRoute, path_param

__all__ = ["routes"]


class ClaimCandidates(Protocol):
    """What a server's engine gives for a client's `claimable_runs` (`LocalEngine` does)."""

    async def claim_candidates(
        self,
        *,
        agent_refs: list[str],
        agent_names: list[str],
        queue: str,
        limit: int,
        host: str,
    ) -> tuple[list[RunRecord], list[RunRecord]]: ...


def _strings(value: Any, member: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{member} must be a list of strings", member=member)
    return [check_text(v, member) for v in value]


def _text(value: Any, member: str) -> str:
    """A non-empty string the database can store (else the engine's UnstorableNameError)."""
    if not isinstance(value, str) or not value:
        raise bad_request(f"{member} must be a non-empty string", member=member)
    return check_text(value, member)


def _positive(value: Any, member: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise bad_request(f"{member} must be a positive number", member=member)
    if not math.isfinite(value):
        raise bad_request(f"{member} must be a finite number", member=member)
    return float(value)


def _record(kind: Any, data: Any, member: str) -> Any:
    """`kind.from_json(data)`, a 400 naming `member` if it is not one."""
    try:
        return kind.from_json(data)
    except (ValueError, TypeError) as exc:
        raise bad_request(f"{member}: {exc}", member=member) from exc


def _lease(data: Any) -> TaskLease:
    lease: TaskLease = _record(TaskLease, data, "lease")
    _text(lease.task_id, "lease.task_id")
    _text(lease.owner, "lease.owner")
    if not 0 <= lease.attempt <= MAX_STORED_INT:
        raise bad_request(
            f"lease.attempt must be an attempt's number, got {lease.attempt}",
            member="lease.attempt",
        )
    # 0 is a lease too: the one ending an attempt found abandoned (`TaskRecord.held(0)`).
    seconds = lease.lease_seconds
    if not (math.isfinite(seconds) and seconds >= 0):
        raise bad_request(
            f"lease.lease_seconds must be 0 or more seconds, got {seconds}",
            member="lease.lease_seconds",
        )
    return lease


async def _body(request: Request, members: tuple[str, ...]) -> dict[str, Any]:
    query(request, ("retry",))
    return body_object(await read_json(request), members, required=members)


def _retried(request: Request) -> bool:
    return request.query_params.get("retry") in ("1", "true")


async def enqueue_run(request: Request) -> Response:
    """POST /api/v1/runs {"spec": RunSpec} -> the queued run (`Engine.enqueue_run`)."""
    spec: RunSpec = _record(RunSpec, (await _body(request, ("spec",)))["spec"], "spec")
    return JSONResponse((await engine_of(request).enqueue_run(spec)).to_json())


async def claimable_runs(request: Request) -> Response:
    """POST /api/v1/claimable-runs {"agent_refs", "agent_names", "queue", "limit", "host"}
    -> {"free": [RunRecord], "held_on_host": [RunRecord]}: the candidates the client chooses
    from (`records.choose_claimable`), as only it can tell its host's holders dead."""
    body = await _body(request, ("agent_refs", "agent_names", "queue", "limit", "host"))
    engine = engine_of(request)
    if not callable(getattr(engine, "claim_candidates", None)):
        raise HTTPProblem(
            501, "no_sessions", f"this server's engine ({engine.describe()}) has no run queue"
        )
    limit = body["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise bad_request("limit must be a whole number", member="limit")
    try:
        free, held = await cast(ClaimCandidates, engine).claim_candidates(
            agent_refs=_strings(body["agent_refs"], "agent_refs"),
            agent_names=_strings(body["agent_names"], "agent_names"),
            queue=_text(body["queue"], "queue"),
            limit=limit,
            host=_text(body["host"], "host"),
        )
    except ValueError as exc:
        raise bad_request(str(exc), member="limit") from exc
    return JSONResponse(
        {"free": [r.to_json() for r in free], "held_on_host": [r.to_json() for r in held]}
    )


async def enqueue_task(request: Request) -> Response:
    """POST /api/v1/tasks {"spec": TaskSpec} -> the task (`Engine.enqueue_task`)."""
    spec: TaskSpec = _record(TaskSpec, (await _body(request, ("spec",)))["spec"], "spec")
    try:
        task = await engine_of(request).enqueue_task(spec)
    except errors.DurableError:
        raise
    except ValueError as exc:  # what the spec asks cannot be retried so (the engine says why)
        raise bad_request(str(exc), member="spec") from exc
    return JSONResponse(task.to_json())


async def get_task(request: Request) -> Response:
    """GET /api/v1/tasks/{task_id} -> the task; 404 task_not_found."""
    query(request, ())
    task = await engine_of(request).get_task(path_param(request.path_params, "task_id"))
    return JSONResponse(task.to_json())


async def list_tasks(request: Request) -> Response:
    """GET /api/v1/tasks?run_id=ID -> {"tasks": [TaskRecord]} (empty for an unknown run)."""
    params = query(request, ("run_id",))
    run_id = params.get("run_id")
    if not run_id:
        raise bad_request("give the run's id: ?run_id=ID", parameter="run_id")
    tasks = await engine_of(request).list_tasks(run_id)
    return JSONResponse({"tasks": [t.to_json() for t in tasks]})


async def claim_task(request: Request) -> Response:
    """POST /api/v1/tasks/claim {"queue", "tools", "owner", "lease_seconds"}
    -> {"task": TaskRecord | null}."""
    body = await _body(request, ("queue", "tools", "owner", "lease_seconds"))
    task = await engine_of(request).claim_task(
        queue=_text(body["queue"], "queue"),
        tools=_strings(body["tools"], "tools"),
        owner=_text(body["owner"], "owner"),
        lease_seconds=_positive(body["lease_seconds"], "lease_seconds"),
    )
    return JSONResponse({"task": None if task is None else task.to_json()})


async def heartbeat_task(request: Request) -> Response:
    """POST /api/v1/tasks/heartbeat {"lease"} -> {"ours": true}; 409 task_lease_lost."""
    lease = _lease((await _body(request, ("lease",)))["lease"])
    await engine_of(request).heartbeat_task(lease)
    return JSONResponse({"ours": True})


async def complete_task(request: Request) -> Response:
    """POST /api/v1/tasks/complete[?retry=1] {"lease", "result"} -> the task."""
    body = await _body(request, ("lease", "result"))
    lease = _lease(body["lease"])
    result: TaskResult = _record(TaskResult, body["result"], "result")
    engine = engine_of(request)
    try:
        task = await engine.complete_task(lease, result)
    except errors.TaskLeaseLostError:
        now = await engine.get_task(lease.task_id)
        if not (_retried(request) and settled_by(now, lease) and now.result == result):
            raise
        task = now  # the first request committed; its answer was lost
    return JSONResponse(task.to_json())


async def fail_task(request: Request) -> Response:
    """POST /api/v1/tasks/fail[?retry=1] {"lease", "error"} -> the task."""
    body = await _body(request, ("lease", "error"))
    lease = _lease(body["lease"])
    error = body["error"]
    if not isinstance(error, str):
        raise bad_request("error must be a string saying why the attempt ended", member="error")
    engine = engine_of(request)
    try:
        task = await engine.fail_task(lease, error)
    except errors.TaskLeaseLostError:
        now = await engine.get_task(lease.task_id)
        # As fail_task stores it (`sql.fail_task`): the attempt, then the error, storable.
        from ..serde import storable_text

        ended = f"attempt {lease.attempt}: {storable_text(error)}"
        if not (_retried(request) and settled_by(now, lease) and now.error == ended):
            raise
        task = now
    return JSONResponse(task.to_json())


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/runs", enqueue_run, methods=["POST"]),
        Route("/api/v1/claimable-runs", claimable_runs, methods=["POST"]),
        Route("/api/v1/tasks", enqueue_task, methods=["POST"]),
        Route("/api/v1/tasks", list_tasks, methods=["GET"]),
        Route("/api/v1/tasks/claim", claim_task, methods=["POST"]),
        Route("/api/v1/tasks/heartbeat", heartbeat_task, methods=["POST"]),
        Route("/api/v1/tasks/complete", complete_task, methods=["POST"]),
        Route("/api/v1/tasks/fail", fail_task, methods=["POST"]),
        RawPathRoute("/api/v1/tasks/{task_id}", get_task, methods=["GET"]),  # any id
    ]
