"""The API's OpenAPI 3.1 document, served at /api/v1/openapi.json: every route, its parameters,
request bodies and responses, with the records' JSON forms and the error body as schemas.

Written out here rather than derived from the handlers: the handlers read their input by hand
(strictly, see `query.py`), and the document is the contract clients are generated from.
tests/durable/server/test_openapi.py holds it to the app (every route is in it, every record
schema has exactly the record's members) and fuzzes the running server from it (schemathesis).
The write side's routes (`sessions_api`: a `RemoteEngine`'s run sessions), the workers'
(`work_api`: queued runs, tool tasks) and the durable sessions' (`conversations_api`) are in
`CLIENT_PATHS`.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..records import (
    APPROVAL_STATUSES,
    CANCEL_MODES,
    JOURNAL_KINDS,
    MAX_STORED_INT,
    RUN_STATUSES,
    TASK_OUTCOMES,
    TASK_STATUSES,
)
from .conversations_api import ITEMS_LIMIT
from .query import EVENTS_LIMIT, MAX_SEQ, RUNS_LIMIT
from .responses import JSONResponse

__all__ = ["PATH", "document", "spec"]

PATH = "/api/v1/openapi.json"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


_TIME = {"type": "number", "description": "seconds since the epoch"}
_COUNT = {"type": "integer", "minimum": 0}
_ANY: Schema = {"description": "any JSON value"}

# What `names.check_run_id` takes: not blank, no NUL, at most 200 characters.
RUN_ID_SCHEMA: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    # (and Python's own whitespace beyond JSON Schema's \s: \x1c-\x1f, \x85)
    "pattern": "^[^\\x00]*[^\\x00\\s\\x1c-\\x1f\\x85][^\\x00]*$",
}

SCHEMAS: dict[str, Schema] = {
    "RunRecord": _object(
        {
            "id": {"type": "string"},
            "agent_name": {"type": "string"},
            "status": {"enum": list(RUN_STATUSES)},
            "input": _ANY,
            "options": {"type": "object"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "finished_at": _nullable(_TIME),
            "owner": _nullable({"type": "string"}),
            "lease_expires_at": _nullable(_TIME),
            "model_calls": _COUNT,
            "tool_calls": _COUNT,
            "requests": _COUNT,
            "input_tokens": _COUNT,
            "output_tokens": _COUNT,
            "total_tokens": _COUNT,
            "final_output": _ANY,
            "error_type": _nullable({"type": "string"}),
            "error": _nullable({"type": "string"}),
            "input_fingerprint": {"type": "string"},
            "cancel_requested": _nullable({"enum": list(CANCEL_MODES)}),
            "agent_ref": _nullable({"type": "string"}),
            "queue": _nullable({"type": "string"}),
        }
    ),
    "JournalRecord": _object(
        {
            "kind": {"enum": list(JOURNAL_KINDS)},
            "key": {"type": "string"},
            "fingerprint": _nullable({"type": "string"}),
            "payload": _ANY,
            "seq": {"type": "integer", "minimum": 1},
        }
    ),
    "EventRecord": _object(
        {
            "run_id": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1},
            "type": {"type": "string"},
            "payload": {"type": "object"},
            "created_at": _TIME,
        }
    ),
    "Attempt": _object(
        {
            "attempt": _nullable({"type": "integer"}),
            "started": _nullable(
                {"type": "object", "description": "the attempt_started event's payload, and seq"}
            ),
            "ended": _nullable(
                {"type": "object", "description": "the attempt_ended event's payload, and seq"}
            ),
        }
    ),
    "RunPage": _object(
        {
            "runs": {"type": "array", "items": _ref("RunRecord")},
            "next_cursor": _nullable(
                {"type": "string", "description": "pass as `cursor` for the next page"}
            ),
        }
    ),
    "Journal": _object({"journal": {"type": "array", "items": _ref("JournalRecord")}}),
    "Events": _object({"events": {"type": "array", "items": _ref("EventRecord")}}),
    "Attempts": _object({"attempts": {"type": "array", "items": _ref("Attempt")}}),
    "StreamedEvent": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the event's seq"},
            "event": {"type": "string", "description": "the event's type"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref("EventRecord"),
            },
        },
        "required": ["id", "event", "data"],
    },
    "RunSpec": _object(
        {
            "run_id": {"type": "string"},
            "agent_name": {"type": "string"},
            "input": _ANY,
            "input_fingerprint": {"type": "string"},
            "options": {"type": "object"},
            "named": {"type": "boolean"},
            "agent_ref": _nullable({"type": "string"}),
            "queue": _nullable({"type": "string"}),
            "claim_status": _nullable({"enum": list(RUN_STATUSES)}),
        },
        optional=("named", "agent_ref", "queue", "claim_status"),
    ),
    "JournalEntry": _object(
        {
            "kind": {"enum": list(JOURNAL_KINDS)},
            "key": {"type": "string"},
            "fingerprint": _nullable({"type": "string"}),
            "payload": _ANY,
        }
    ),
    "NewEvent": _object({"type": {"type": "string"}, "payload": {"type": "object"}}),
    "UsageDelta": _object(
        {
            name: _COUNT
            for name in (
                "model_calls",
                "tool_calls",
                "requests",
                "input_tokens",
                "output_tokens",
                "total_tokens",
            )
        }
    ),
    "OpenRequest": _object(
        {
            "spec": _ref("RunSpec"),
            "owner": {"type": "string", "minLength": 1, "description": "the lease holder"},
            "lease_seconds": {"type": "number", "exclusiveMinimum": 0},
            "dead_holder": _nullable(
                {"type": "string", "description": "a holder the client knows is dead"}
            ),
        },
        optional=("dead_holder",),
    ),
    "Opened": _object(
        {
            "record": _ref("RunRecord"),
            "journal": {"type": "array", "items": _ref("JournalRecord")},
            "attempt": _nullable({"type": "integer", "description": "null: finished, read only"}),
            "next_journal_seq": {"type": "integer", "minimum": 1},
            "next_event_seq": {"type": "integer", "minimum": 1},
            "created": {"type": "boolean"},
        }
    ),
    "Append": _object(
        {
            "run_id": {"type": "string"},
            "owner": {"type": "string"},
            "lease_seconds": {"type": "number", "exclusiveMinimum": 0},
            "journal_seq": {"type": "integer", "minimum": 1},
            "event_seq": {"type": "integer", "minimum": 1},
            "journal": _nullable(_ref("JournalEntry")),
            "events": {"type": "array", "items": _ref("NewEvent")},
            "usage": _nullable(_ref("UsageDelta")),
        },
        optional=("journal", "events", "usage"),
    ),
    "Heartbeat": _object(
        {
            "run_id": {"type": "string"},
            "owner": {"type": "string"},
            "lease_seconds": {"type": "number", "exclusiveMinimum": 0},
        }
    ),
    "Finish": _object(
        {
            "run_id": {"type": "string"},
            "owner": {"type": "string"},
            "event_seq": {"type": "integer", "minimum": 1},
            "events": {"type": "array", "items": _ref("NewEvent")},
            "status": {"enum": list(RUN_STATUSES)},
            "final_output": _ANY,
            "error_type": _nullable({"type": "string"}),
            "error": _nullable({"type": "string"}),
        },
        optional=("final_output", "error_type", "error"),
    ),
    "Release": _object(
        {
            "run_id": {"type": "string"},
            "owner": {"type": "string"},
            "event": _nullable(_ref("NewEvent")),
        },
        optional=("event",),
    ),
    "Approval": _object(
        {
            "call_id": {"type": "string"},
            "tool_name": {"type": "string"},
            "arguments": {"type": "string", "description": "the raw JSON arguments string"},
            "agent_name": {"type": "string"},
            "key": {"type": "string", "description": "the call's journal key"},
            "status": {"enum": list(APPROVAL_STATUSES)},
            "always": {"type": "boolean"},
            "message": _nullable({"type": "string"}),
            "requested_at": _TIME,
            "decided_at": _nullable(_TIME),
            "decided_by": _nullable({"type": "string"}),
            "policy": _nullable(
                {"type": "string", "description": "the policy rule that asked, when one did"}
            ),
        },
        optional=(
            "status",
            "always",
            "message",
            "requested_at",
            "decided_at",
            "decided_by",
            "policy",
        ),
    ),
    "Approvals": _object({"approvals": {"type": "array", "items": _ref("Approval")}}),
    "Decision": _object(
        {
            "call_id": _nullable({"type": "string", "minLength": 1}),
            "decision": {"enum": ["approve", "reject"]},
            "always": {"type": "boolean", "default": False},
            "message": _nullable({"type": "string", "minLength": 1}),
            "decided_by": _nullable(
                {"type": "string", "minLength": 1, "description": "who decides (a CLI user)"}
            ),
        },
        optional=("call_id", "always", "message", "decided_by"),
    ),
    "Decided": _object(
        {"run": _ref("RunRecord"), "approvals": {"type": "array", "items": _ref("Approval")}}
    ),
    "Snapshot": _object(
        {
            "state": {"type": "object", "description": "the SDK's RunState.to_json()"},
            "model_calls": _COUNT,
            "approvals": {"type": "array", "items": _ref("Approval")},
        }
    ),
    "SnapshotAnswer": _object({"snapshot": _nullable(_ref("Snapshot"))}),
    "Interrupt": _object(
        {
            "run_id": {"type": "string"},
            "owner": {"type": "string"},
            "event_seq": {"type": "integer", "minimum": 1},
            "events": {"type": "array", "items": _ref("NewEvent")},
            "snapshot": _ref("Snapshot"),
        }
    ),
    "Fenced": _object(
        {
            "ours": {"const": True},
            "cancel_requested": _nullable({"enum": list(CANCEL_MODES)}),
            "first_event_seq": {"type": "integer", "minimum": 0},
        }
    ),
    "CancelState": _object({"cancel_requested": _nullable({"enum": list(CANCEL_MODES)})}),
    "EnqueueRun": _object({"spec": _ref("RunSpec")}),
    "ClaimableRequest": _object(
        {
            "agent_refs": {"type": "array", "items": {"type": "string"}},
            "agent_names": {"type": "array", "items": {"type": "string"}},
            "queue": {"type": "string", "minLength": 1},
            "limit": {"type": "integer", "minimum": 1},
            "host": {"type": "string", "minLength": 1, "description": "the client's hostname"},
        }
    ),
    "ClaimCandidates": _object(
        {
            "free": {"type": "array", "items": _ref("RunRecord")},
            "held_on_host": {"type": "array", "items": _ref("RunRecord")},
        }
    ),
    "TaskSpec": _object(
        {
            "run_id": {"type": "string"},
            "call_key": {"type": "string"},
            "queue": {"type": "string"},
            "tool_name": {"type": "string"},
            "call_id": {"type": "string"},
            "arguments": {"type": "string"},
            "context": _ANY,
            "max_attempts": {"type": "integer", "minimum": 1},
            "timeout": _nullable({"type": "number", "exclusiveMinimum": 0}),
            "retry_delay": {"type": "number", "minimum": 0},
        },
        optional=("context", "max_attempts", "timeout", "retry_delay"),
    ),
    "TaskResult": _object(
        {
            "kind": {"enum": list(TASK_OUTCOMES)},
            "output": _ANY,
            "error_type": _nullable({"type": "string"}),
            "error": _nullable({"type": "string"}),
        },
        optional=("output", "error_type", "error"),
    ),
    "TaskLease": _object(
        {
            "task_id": {"type": "string"},
            "owner": {"type": "string"},
            "attempt": {"type": "integer"},
            "lease_seconds": {"type": "number", "minimum": 0},
        }
    ),
    "TaskRecord": _object(
        {
            "id": {"type": "string"},
            "run_id": {"type": "string"},
            "call_key": {"type": "string"},
            "queue": {"type": "string"},
            "tool_name": {"type": "string"},
            "call_id": {"type": "string"},
            "arguments": {"type": "string"},
            "context": _ANY,
            "status": {"enum": list(TASK_STATUSES)},
            "attempts": _COUNT,
            "max_attempts": {"type": "integer", "minimum": 1},
            "timeout": _nullable({"type": "number"}),
            "retry_delay": {"type": "number"},
            "owner": _nullable({"type": "string"}),
            "lease_expires_at": _nullable(_TIME),
            "available_at": _TIME,
            "result": _nullable(_ref("TaskResult")),
            "error": _nullable({"type": "string"}),
            "created_at": _TIME,
            "updated_at": _TIME,
        }
    ),
    "Tasks": _object({"tasks": {"type": "array", "items": _ref("TaskRecord")}}),
    "EnqueueTask": _object({"spec": _ref("TaskSpec")}),
    "ClaimTask": _object(
        {
            "queue": {"type": "string", "minLength": 1},
            "tools": {"type": "array", "items": {"type": "string"}},
            "owner": {"type": "string", "minLength": 1},
            "lease_seconds": {"type": "number", "exclusiveMinimum": 0},
        }
    ),
    "Claimed": _object({"task": _nullable(_ref("TaskRecord"))}),
    "LeaseOnly": _object({"lease": _ref("TaskLease")}),
    "CompleteTask": _object({"lease": _ref("TaskLease"), "result": _ref("TaskResult")}),
    "FailTask": _object({"lease": _ref("TaskLease"), "error": {"type": "string"}}),
    "Ours": _object({"ours": {"const": True}}),
    "CancelRequest": _object(
        {
            "mode": {"enum": list(CANCEL_MODES)},
            # who asks, as the asking process says (the server records itself as the way)
            "requested_by": _nullable(
                _object(
                    {
                        "host": _nullable({"type": "string", "minLength": 1, "maxLength": 255}),
                        "pid": _nullable(
                            {"type": "integer", "minimum": 0, "maximum": MAX_STORED_INT}
                        ),
                        "user": _nullable({"type": "string", "minLength": 1, "maxLength": 255}),
                    },
                    optional=("host", "pid", "user"),
                )
            ),
        },
        optional=("mode", "requested_by"),
    ),
    "ForkRequest": _object(
        {
            "at": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_SEQ,
                "description": "the step to fork at: the event seq `runplane runs show` prints; "
                "the journal before it is shared, the fork goes on live from it",
            },
            "run_id": {
                **RUN_ID_SCHEMA,
                "description": "the fork's id (the same body again answers the same fork)",
            },
            "queue": {
                **_nullable({"type": "string", "minLength": 1, "pattern": "^[^\\x00]*$"}),
                "description": "the worker queue the fork waits on (default `default`); null: "
                "none, the caller opens it",
            },
        },
        optional=("queue",),
    ),
    "PruneRequest": _object({"finished_before": _TIME}),
    "SessionItems": _object(
        {"items": {"type": "array", "items": _ANY, "description": "oldest first"}}
    ),
    "AddSessionItems": _object(
        {
            "items": {"type": "array", "items": _ANY, "description": "SDK input items (JSON)"},
            "write_key": {
                "type": "string",
                "minLength": 1,
                "maxLength": 300,
                "pattern": "^[^\\x00]*$",
                "description": "the write's key: one sent again under it writes nothing",
            },
        }
    ),
    "SessionWritten": _object(
        {"written": {"type": "boolean", "description": "false: a write with this key was taken"}}
    ),
    "SessionPopped": _object({"item": _ANY}),
    "SessionCleared": _object({"cleared": {"const": True}}),
    "Pruned": _object({"deleted": _COUNT}),
    "Health": _object({"status": {"const": "ok"}, "engine": {"type": "string"}}),
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {"type": "object"},
                }
            )
        }
    ),
}


def _json(schema: str, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_ERRORS = {
    "400": _json("Error", "the request is malformed: a parameter or body that does not fit"),
    "401": _json("Error", "no bearer token (the server has RUNPLANE_TOKEN set)"),
    "403": _json("Error", "a bearer token that is not the server's"),
    "413": _json("Error", "the request body is over the server's limit"),
    "503": _json("Error", "the database cannot be reached"),
}
_NOT_FOUND = {"404": _json("Error", "no run with this id (run_not_found)")}
_CONFLICT = {"409": _json("Error", "the run cannot change now (finished, or held)")}

RUN_ID: Schema = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "description": (
        "the run's id, percent-encoded as one segment, dots too "
        "(quote(run_id, safe='').replace('.', '%2E'))"
    ),
    "schema": RUN_ID_SCHEMA,
    "example": "order-42",
}


def _param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _limit(low: int, default: int, high: int) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": high, "default": default}


_AFTER = _param(
    "after", {"type": "integer", "minimum": 0, "maximum": MAX_SEQ, "default": 0},
    "only events with a greater seq",
)  # fmt: skip


def _op(summary: str, responses: dict[str, Schema], **more: Any) -> Schema:
    return {"summary": summary, "responses": {**responses, **_ERRORS}, **more}


SESSION_ID: Schema = {
    **RUN_ID,
    "name": "session_id",
    "description": "the durable session's id, percent-encoded as one segment, as a run id is",
    "example": "chat-7",
}


def _session_op(summary: str, ok: Schema, **more: Any) -> Schema:
    return _op(summary, {"200": ok}, **more)


def _run_op(
    summary: str, ok: Schema, *, more_responses: Schema | None = None, **more: Any
) -> Schema:
    responses = {"200": ok, **_NOT_FOUND, **(more_responses or {})}
    return _op(summary, responses, parameters=[RUN_ID], **more)


PATHS: dict[str, Schema] = {
    "/healthz": {
        "get": {
            "summary": "The server is up (never needs the token)",
            "security": [],
            "responses": {"200": _json("Health", "up, and which store it serves")},
        }
    },
    "/metrics": {
        "get": _op(
            "The store's counts in Prometheus' text format",
            {
                "200": {
                    "description": "Prometheus text format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "501": _json("Error", "the engine served cannot count its runs"),
            },
        )
    },
    PATH: {
        "get": _op(
            "This document",
            {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
        )
    },
    "/api/v1/runs": {
        "get": _op(
            "Runs, newest first (created_at, then id, descending), a page at a time",
            {"200": _json("RunPage", "a page of runs, and the cursor of the next")},
            parameters=[
                _param("limit", _limit(*RUNS_LIMIT), "runs per page"),
                _param("status", {"enum": list(RUN_STATUSES)}, "only runs in this status"),
                _param(
                    "agent",
                    {"type": "string", "maxLength": 500, "pattern": "^[^\\x00]*$"},
                    "only runs started with this agent",
                ),
                _param("created_after", {"type": "number"}, "only runs created at or after"),
                _param("created_before", {"type": "number"}, "only runs created before"),
                _param(
                    "cursor",
                    {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                    "a page's next_cursor, unchanged (opaque): the runs after it",
                ),
            ],
        )
    },
    "/api/v1/runs/{run_id}": {"get": _run_op("A run", _json("RunRecord", "the run, as stored"))},
    "/api/v1/runs/{run_id}/journal": {
        "get": _run_op("A run's journal, in seq order", _json("Journal", "its entries"))
    },
    "/api/v1/runs/{run_id}/events": {
        "get": {
            **_run_op("A run's events, in seq order", _json("Events", "a page of events")),
            "parameters": [
                RUN_ID,
                _AFTER,
                _param("limit", _limit(*EVENTS_LIMIT), "events at most; page with `after`"),
            ],
        }
    },
    "/api/v1/runs/{run_id}/events/stream": {
        "get": {
            **_run_op(
                "A run's events, live, as Server-Sent Events (id: seq, event: type, data: "
                "EventRecord JSON); ends once the run is finished and all were sent",
                {
                    "description": "an event stream; each event as below (keep-alive "
                    "comments between them)",
                    "content": {"text/event-stream": {"schema": _ref("StreamedEvent")}},
                },
            ),
            "parameters": [
                RUN_ID,
                _AFTER,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "resume after this seq (wins over `after`)",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
                },
            ],
        }
    },
    "/api/v1/runs/{run_id}/attempts": {
        "get": _run_op("A run's attempts, from its attempt events", _json("Attempts", "each"))
    },
    "/api/v1/runs/{run_id}/cancel": {
        "post": _run_op(
            "Ask the run to stop: at once, or after its current turn",
            _json("RunRecord", "the run, with cancel_requested or cancelled"),
            more_responses=_CONFLICT,
            requestBody={
                "required": False,
                "content": {"application/json": {"schema": _ref("CancelRequest")}},
            },
        )
    },
    "/api/v1/runs/{run_id}/fork": {
        "post": _run_op(
            "Fork the run at a step: a new queued run sharing its journal before the step",
            _json("RunRecord", "the fork, queued (options.forked_from says of what)"),
            more_responses={
                "409": _json(
                    "Error",
                    "run_id names another run (run_input_mismatch), the run has no step "
                    "`at` (fork_step: its steps are 1 to `last`), or it used a session, "
                    "which a fork would run without (fork_session)",
                ),
            },
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("ForkRequest")}},
            },
        )
    },
    "/api/v1/runs/{run_id}/approvals": {
        "get": _run_op(
            "The calls the run stopped for approval, with their decisions",
            _json("Approvals", "each, in the order requested (none for a run that never waited)"),
        ),
        "post": _run_op(
            "Approve or reject a waiting call (call_id null: every pending call)",
            _json("Decided", "the run and its approvals after the decision"),
            more_responses={
                "404": _json("Error", "no such run (run_not_found) or call (approval_not_found)"),
                "409": _json(
                    "Error",
                    "the run is not awaiting approval, or the call was decided the other way "
                    "(approval_conflict)",
                ),
            },
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("Decision")}},
            },
        ),
    },
    "/api/v1/runs/{run_id}/snapshot": {
        "get": _run_op(
            "The state the run stopped in for approval, its seal verified by the server",
            _json("SnapshotAnswer", "the snapshot, or null if the run never stopped so"),
            more_responses={
                "422": _json("Error", "the stored snapshot does not verify (run_state_invalid)")
            },
        )
    },
    "/api/v1/prune": {
        "post": _op(
            "Delete finished runs (and their journals, events) finished before a time",
            {"200": _json("Pruned", "how many runs were deleted")},
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("PruneRequest")}},
            },
        )
    },
}


def _body(schema: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


_RETRY = _param(
    "retry", {"enum": ["1", "true"]},
    "this write is sent again after its answer was lost: one that committed is recognised",
)  # fmt: skip
_LEASED = {"409": _json("Error", "the run's lease is another holder's (run_leased, taken_over)")}
_NO_SESSIONS = {"501": _json("Error", "the engine served cannot serve clients (no_sessions)")}
_TASK_LOST = {"409": _json("Error", "the attempt no longer holds the task (task_lease_lost)")}
_NO_TASK = {"404": _json("Error", "no task with this id (task_not_found)")}


def _write(summary: str, schema: str) -> Schema:
    return _op(
        summary,
        {"200": _json("Fenced", "written (or found written)"), **_LEASED, **_NO_SESSIONS},
        parameters=[_RETRY],
        requestBody=_body(schema),
    )


# What a `RemoteEngine` asks for: its run sessions' writes (`sessions_api`) and the workers'
# calls (`work_api`).
CLIENT_PATHS: dict[str, Schema] = {
    "/api/v1/sessions": {
        "post": _op(
            "Open a run for a lease holder (create it, claim it, or read a finished one)",
            {
                "200": _json("Opened", "the opening the session is built from"),
                **_CONFLICT,
                **_NO_SESSIONS,
            },
            requestBody=_body("OpenRequest"),
        )
    },
    "/api/v1/sessions/cancel": {
        "get": _op(
            "The run's pending stop request (what a running session polls)",
            {"200": _json("CancelState", "the request, or null"), **_NO_SESSIONS},
            parameters=[{**_param("run_id", {"type": "string"}, "the run"), "required": True}],
        )
    },
    "/api/v1/sessions/{write}": {
        "post": {
            **_write(
                "One session write (append: a step; heartbeat; finish: the outcome; release: "
                "give the lease back), fenced by its holder",
                "Append",
            ),
            "parameters": [
                {
                    "name": "write",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["append", "heartbeat", "finish", "release", "interrupt"]},
                    "description": "which write; the body is its JSON (Append, Heartbeat, "
                    "Finish, Release, Interrupt)",
                },
                _RETRY,
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                _ref("Append"),
                                _ref("Heartbeat"),
                                _ref("Finish"),
                                _ref("Release"),
                                _ref("Interrupt"),
                            ]
                        }
                    }
                },
            },
        }
    },
    "/api/v1/runs": {
        "post": _op(
            "Queue a run for a worker (Runner.start): the run, or the one its id names already",
            {"200": _json("RunRecord", "the queued run"), **_CONFLICT},
            requestBody=_body("EnqueueRun"),
        )
    },
    "/api/v1/claimable-runs": {
        "post": _op(
            "What a worker of a queue may claim: runs free now, and those held on its host "
            "(the worker tells which of their holders are dead)",
            {"200": _json("ClaimCandidates", "the candidates"), **_NO_SESSIONS},
            requestBody=_body("ClaimableRequest"),
        )
    },
    "/api/v1/tasks": {
        "post": _op(
            "Enqueue a remote tool call (one task per run and call key)",
            {"200": _json("TaskRecord", "the task, new or as it is")},
            requestBody=_body("EnqueueTask"),
        ),
        "get": _op(
            "A run's tool tasks, oldest first",
            {"200": _json("Tasks", "its tasks (none for an unknown run)")},
            parameters=[{**_param("run_id", {"type": "string"}, "the run"), "required": True}],
        ),
    },
    "/api/v1/tasks/claim": {
        "post": _op(
            "Claim the next available task of a queue for one of the tools, under a lease",
            {"200": _json("Claimed", "the task claimed, or null")},
            requestBody=_body("ClaimTask"),
        )
    },
    "/api/v1/tasks/heartbeat": {
        "post": _op(
            "Renew an attempt's lease on its task",
            {"200": _json("Ours", "renewed"), **_TASK_LOST, **_NO_TASK},
            requestBody=_body("LeaseOnly"),
        )
    },
    "/api/v1/tasks/complete": {
        "post": _op(
            "Record an attempt's result, once",
            {"200": _json("TaskRecord", "the task, completed"), **_TASK_LOST, **_NO_TASK},
            parameters=[_RETRY],
            requestBody=_body("CompleteTask"),
        )
    },
    "/api/v1/tasks/fail": {
        "post": _op(
            "End an attempt without a result: retried after its backoff, or failed",
            {"200": _json("TaskRecord", "the task, pending or failed"), **_TASK_LOST, **_NO_TASK},
            parameters=[_RETRY],
            requestBody=_body("FailTask"),
        )
    },
    "/api/v1/durable-sessions/{session_id}/items": {
        "get": _session_op(
            "A durable session's items (`DurableSession.get_items`)",
            _json("SessionItems", "its items, oldest first (none for a session never written)"),
            parameters=[
                SESSION_ID,
                _param(
                    "limit",
                    _limit(*ITEMS_LIMIT),
                    "only the latest this many items (0: none; absent: all)",
                ),
            ],
        ),
        "post": _session_op(
            "Append items to a durable session, once per write key",
            _json("SessionWritten", "appended, or found appended under this key"),
            parameters=[SESSION_ID, _RETRY],
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("AddSessionItems")}},
            },
        ),
    },
    "/api/v1/durable-sessions/{session_id}/pop": {
        "post": _session_op(
            "Remove a durable session's latest item",
            _json("SessionPopped", "the item removed, or null for an empty session"),
            parameters=[SESSION_ID],
        )
    },
    "/api/v1/durable-sessions/{session_id}/clear": {
        "post": _session_op(
            "Remove every item of a durable session",
            _json("SessionCleared", "cleared"),
            parameters=[SESSION_ID],
        )
    },
    "/api/v1/tasks/{task_id}": {
        "get": _op(
            "A tool task",
            {"200": _json("TaskRecord", "the task, as stored"), **_NO_TASK},
            parameters=[
                {
                    "name": "task_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                    "description": "the task's id, percent-encoded as one segment",
                }
            ],
        )
    },
}


@functools.cache
def spec() -> dict[str, Any]:
    """The whole document: the read and admin side, and what clients of the server ask."""
    paths = {path: dict(item) for path, item in PATHS.items()}
    for path, item in CLIENT_PATHS.items():
        paths.setdefault(path, {}).update(item)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "runplane server",
            "version": "1",
            "description": "Durable agent runs: read them, watch them live, cancel and prune "
            "them. Every error is {'error': {'code', 'message', 'fields'}}. A server started "
            "with RUNPLANE_TOKEN needs 'Authorization: Bearer TOKEN' on every call but "
            "/healthz; one without (loopback only) needs none.",
        },
        "paths": copy.deepcopy(paths),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def document(request: Request) -> Response:
    return JSONResponse(spec())
