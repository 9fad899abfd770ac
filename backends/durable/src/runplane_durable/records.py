"""Plain records exchanged with an engine, in process or over a wire, and their JSON form.

Every record is a frozen dataclass with `to_json()`, a dict of JSON types (str, int, float,
bool, None, lists and dicts of them), and `from_json(data)`, its inverse: `R.from_json(
json.loads(json.dumps(r.to_json()))) == r` for every record `r`. The JSON form of a record is an
object with one member per field, named as the field, holding the field's value as it is (a
payload, an input, options and a final output are already JSON data: the runtime encodes them
before they reach an engine; a nested record is its own JSON form). `from_json` refuses an
object with missing or unknown members, or a status or journal kind outside its vocabulary,
with a ValueError that says which. No SDK import: the CLI and a server use these too.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

__all__ = [
    "APPROVAL_STATUSES",
    "CANCEL_MODES",
    "DEFAULT_QUEUE",
    "JOURNAL_KINDS",
    "MAX_RETRY_DELAY",
    "RUN_STATUSES",
    "TASK_STATUSES",
    "Approval",
    "ApprovalStatus",
    "CancelMode",
    "EventRecord",
    "JournalEntry",
    "JournalKind",
    "JournalRecord",
    "NewEvent",
    "RunRecord",
    "RunSpec",
    "RunStatus",
    "Snapshot",
    "TaskLease",
    "TaskOutcome",
    "TaskRecord",
    "TaskResult",
    "TaskSpec",
    "TaskStatus",
    "UsageDelta",
    "check_listing",
    "check_status",
    "read_run_cursor",
    "retry_delay",
    "run_cursor",
    "settled_by",
]

# The queue of a run started with no queue named, and the one a worker serves by default.
DEFAULT_QUEUE = "default"
RunStatus = Literal["queued", "running", "awaiting_approval", "completed", "failed", "cancelled"]
# How a run asked to stop from another process stops: at once, or once its current turn ends
# (the SDK's `RunResultStreaming.cancel(mode)`).
CancelMode = Literal["immediate", "after_turn"]
CANCEL_MODES: tuple[str, ...] = get_args(CancelMode)
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
# What a journal entry records: a model response (keyed by its ordinal in the run), a tool
# output (keyed by the tool call's key), or a read or write of the run's `session=` (keyed by
# its ordinal among the run's session steps).
JournalKind = Literal["model", "tool", "session"]
JOURNAL_KINDS: tuple[str, ...] = get_args(JournalKind)

# A remote tool call's task: waiting for a worker (new, or retrying after backoff), held by one
# attempt under a lease, done with the tool's result, or failed for good (attempts exhausted).
TaskStatus = Literal["pending", "running", "completed", "failed"]
TASK_STATUSES: tuple[str, ...] = get_args(TaskStatus)
# What the tool did on the worker: returned a value, or raised.
TaskOutcome = Literal["ok", "error"]
TASK_OUTCOMES: tuple[str, ...] = get_args(TaskOutcome)

R = TypeVar("R")


def _members(cls: type[R], data: Any) -> dict[str, Any]:
    """`data`'s members as `cls`'s keyword arguments, once every required one is there and none
    is unknown; else a ValueError naming them."""
    name = cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"a {name} in JSON is an object, got {type(data).__name__}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    known = {f.name for f in fields}
    required = {
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    unknown = sorted(set(data) - known)
    missing = sorted(required - set(data))
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown {', '.join(map(str, unknown))}")
        raise ValueError(
            f"not a {name} in JSON ({'; '.join(parts)}); its members are {', '.join(sorted(known))}"
        )
    return dict(data)


_TEXT = (str,)
_MAYBE_TEXT = (str, type(None))
_NUMBER = (int, float)
_MAYBE_NUMBER = (int, float, type(None))


def _typed(cls: type, members: dict[str, Any], types: dict[str, tuple[type, ...]]) -> None:
    """Each of `members` named in `types` is of one of its types (a bool is no number); else a
    ValueError naming it: a record read from a client's JSON never reaches a database with a
    member it cannot store."""
    for name, allowed in types.items():
        if name not in members:
            continue
        value = members[name]
        if isinstance(value, bool) and bool not in allowed:
            ok = False
        else:
            ok = isinstance(value, allowed)
        if not ok:
            kinds = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise ValueError(f"{cls.__name__}.{name} must be {kinds}, got {type(value).__name__}")


def _one_of(value: Any, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{value!r} is not a {what}; use one of: {', '.join(allowed)}")


def check_status(value: Any) -> RunStatus:
    """`value` if it is a run status; else a ValueError listing them."""
    _one_of(value, RUN_STATUSES, "run status")
    status: RunStatus = value
    return status


def check_listing(
    *, limit: int | None, created_after: float | None, created_before: float | None
) -> None:
    """Refuse `Engine.list_runs` arguments no listing can mean, with a ValueError saying why:
    every engine checks them alike (a remote one before asking its server)."""
    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit must be a count of runs (0 or more) or None, got {limit!r}")
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite time in seconds, got {value!r}")


# The largest count or number a store keeps in an integer column (PostgreSQL's integer).
MAX_STORED_INT = 2**31 - 1


def check_claim_limit(limit: int) -> None:
    """`Engine.claimable_runs`' limit: a positive count (checked alike by every engine)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_STORED_INT:
        raise ValueError(f"limit must be at least 1 (and at most {MAX_STORED_INT}), got {limit!r}")


def choose_claimable(
    free: list[RunRecord],
    held_on_host: list[RunRecord],
    *,
    limit: int,
    is_dead: Callable[[str], bool],
) -> list[RunRecord]:
    """`Engine.claimable_runs` from its candidates: the orphans (the `running` runs of `free`,
    and those of `held_on_host` whose holder `is_dead` knows dead), oldest first, then the
    `queued` runs of `free`; at most `limit`. Decided where `is_dead` can know the holders: a
    local engine's process, or a server's client, for its own host. The `awaiting_approval`
    runs of `free` (every call of theirs decided) come with the orphans: continuing them."""
    dead = [r for r in held_on_host if r.owner is not None and is_dead(r.owner)]
    orphans = sorted(
        [r for r in free if r.status in ("running", "awaiting_approval")] + dead,
        key=lambda r: (r.created_at, r.id),
    )
    return [*orphans, *(r for r in free if r.status == "queued")][:limit]


@dataclass(frozen=True)
class RunSpec:
    """What identifies a run's start: a reused id must come with the same agent and input.

    JSON: {"run_id", "agent_name", "input", "input_fingerprint", "options", "named",
    "agent_ref", "queue", "claim_status"}; the last four are optional and take no part in
    equality. `named`
    (default false) says the program chose the id (`with run_id("order-42")`), so it may mean
    to resume a run. `agent_ref` ("pkg.module:attr", default null) names the agent so a worker
    can rebuild it; `queue` (default null) is the worker queue whose workers may take the run
    over when its process dies (null: none may, as for a nested run, which its parent resumes).
    Both are stored when the run is created, never changed by a later opening. `claim_status`
    (default null) makes an opening a worker's claim of a run `claimable_runs` listed in that
    status: a run in another status by then (finished by another process since) is refused with
    RunLeasedError, never taken up again or replayed.
    """

    run_id: str
    agent_name: str
    input: Any
    input_fingerprint: str
    options: dict[str, Any]
    named: bool = field(default=False, compare=False)
    agent_ref: str | None = field(default=None, compare=False)
    queue: str | None = field(default=None, compare=False)
    claim_status: RunStatus | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> RunSpec:
        members = _members(cls, data)
        _typed(
            cls,
            members,
            {
                "run_id": _TEXT,
                "agent_name": _TEXT,
                "input_fingerprint": _TEXT,
                "options": (dict,),
                "named": (bool,),
                "agent_ref": _MAYBE_TEXT,
                "queue": _MAYBE_TEXT,
                "claim_status": _MAYBE_TEXT,
            },
        )
        if members.get("claim_status") is not None:
            check_status(members["claim_status"])
        return cls(**members)


@dataclass(frozen=True)
class RunRecord:
    """A run as the engine holds it: identity, status, lease, usage totals and outcome.

    JSON: one member per field. Times are seconds since the epoch (floats); `owner` and
    `lease_expires_at` name the lease holder and when its lease runs out (both null when no
    process holds the run); `final_output` is set for a completed run, `error_type` (the
    exception's qualified name) and `error` (its message) for a failed one. `cancel_requested`
    is a stop asked for from another process and not yet carried out ("immediate" or
    "after_turn"); `agent_ref` names the agent as an import reference ("pkg.module:attr") when
    one is known, so a worker can rebuild it; `queue` is the worker queue of a started run.
    """

    id: str
    agent_name: str
    status: RunStatus
    input: Any
    options: dict[str, Any]
    created_at: float
    updated_at: float
    finished_at: float | None
    owner: str | None
    lease_expires_at: float | None
    model_calls: int
    tool_calls: int
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    final_output: Any | None
    error_type: str | None
    error: str | None
    input_fingerprint: str = ""
    cancel_requested: CancelMode | None = None
    agent_ref: str | None = None
    queue: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        members = _members(cls, data)
        check_status(members["status"])
        if members.get("cancel_requested") is not None:
            _one_of(members["cancel_requested"], CANCEL_MODES, "cancel mode")
        return cls(**members)


# A listing's cursor names a position in the runs' order (newest first: created_at, then id, both
# descending): the runs after it are those older than the run it was made from. Its text is
# base64url of a JSON array [version, created_at, id], opaque to callers: it may change shape
# with its version, and a reader refuses any other.
_CURSOR_VERSION = 1


def run_cursor(record: RunRecord) -> str:
    """The cursor for the runs listed after `record`: `Engine.list_runs(cursor=...)` then starts
    with the next older run (ties in `created_at` broken by id), so no run is listed twice or
    skipped, even while new runs are created."""
    text = json.dumps([_CURSOR_VERSION, record.created_at, record.id], ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def read_run_cursor(cursor: str) -> tuple[float, str]:
    """The (created_at, id) position `cursor` (from `run_cursor`) names; a ValueError saying so
    for any text `run_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, created_at, run_id = json.loads(raw.decode("utf-8"))
        if not (
            version == _CURSOR_VERSION
            and type(version) is int
            and isinstance(created_at, (int, float))
            and not isinstance(created_at, bool)
            and math.isfinite(created_at)
            and isinstance(run_id, str)
        ):
            raise ValueError("not a position")
    except (ValueError, TypeError, RecursionError, binascii.Error, UnicodeError):
        raise ValueError(
            f"{cursor[:80]!r} is not a run listing's cursor; pass the next_cursor of the page "
            "before it unchanged, or no cursor for the first page"
        ) from None
    return float(created_at), run_id


@dataclass(frozen=True)
class JournalEntry:
    """One step's durable result, as a session appends it: what replay returns instead of
    calling out again.

    JSON: {"kind": "model" | "tool" | "session", "key", "fingerprint", "payload"}. `key` is the
    model call's ordinal ("1", "2", ...), the tool call's key or the session step's ordinal;
    `fingerprint` is the model request's (replay checks it), null for a tool output or a session
    step; `payload` is the encoded response, output or session step.
    """

    kind: JournalKind
    key: str
    fingerprint: str | None
    payload: Any

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> JournalEntry:
        members = _members(cls, data)
        _one_of(members["kind"], JOURNAL_KINDS, "journal kind")
        return cls(**members)


@dataclass(frozen=True, kw_only=True)
class JournalRecord(JournalEntry):
    """A journal entry as stored: the entry and its position in the run's journal.

    JSON: the entry's members and "seq" (1, 2, ... in the order the steps committed).
    """

    seq: int

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> JournalRecord:
        members = _members(cls, data)
        _one_of(members["kind"], JOURNAL_KINDS, "journal kind")
        return cls(**members)

    @property
    def entry(self) -> JournalEntry:
        return JournalEntry(self.kind, self.key, self.fingerprint, self.payload)


@dataclass(frozen=True)
class NewEvent:
    """An event a session appends to the run's event log; the engine numbers and times it.

    JSON: {"type", "payload"} (payload: an object, default empty).
    """

    type: str
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> NewEvent:
        return cls(**_members(cls, data))


@dataclass(frozen=True)
class EventRecord:
    """An event as stored: JSON {"run_id", "seq", "type", "payload", "created_at"}; `seq` is
    1, 2, ... per run, `created_at` seconds since the epoch."""

    run_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> EventRecord:
        return cls(**_members(cls, data))


@dataclass(frozen=True)
class UsageDelta:
    """What one step adds to the run's usage totals. JSON: one integer member per field, each
    optional (default 0)."""

    model_calls: int = 0
    tool_calls: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> UsageDelta:
        members = _members(cls, data)
        for name, value in members.items():  # each is added to a stored integer column
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"usage {name!r} must be an integer, got {type(value).__name__}")
            if not 0 <= value <= MAX_STORED_INT:
                raise ValueError(f"usage {name!r} must be from 0 to {MAX_STORED_INT}, got {value}")
        return cls(**members)


@dataclass(frozen=True)
class Requester:
    """Who asks something of a run, for its record: a process as it says itself (host, pid,
    user), and `via`, the server that wrote it for a client over HTTP, with that client's
    address. A server records its client's word, and who it came through, never as its own."""

    host: str | None
    pid: int | None = None
    user: str | None = None
    via: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A remote tool call as a run enqueues it: one task per (run_id, call_key).

    JSON: one member per field. `call_key` is the call's journal key (`names.tool_key`);
    `arguments` the model's argument text as the tool receives it; `context` the run's context
    as an encoded value (`serde.dump_value`), or null when none is sent. A worker gets at most
    `max_attempts` attempts; `timeout` (seconds, or null) bounds one attempt; an abandoned or
    failed attempt is retried after `retry_delay` seconds, doubled for each attempt after the
    first (at most `MAX_RETRY_DELAY`).
    """

    run_id: str
    call_key: str
    queue: str
    tool_name: str
    call_id: str
    arguments: str
    context: Any | None = None
    max_attempts: int = 3
    timeout: float | None = None
    retry_delay: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> TaskSpec:
        members = _members(cls, data)
        texts = ("run_id", "call_key", "queue", "tool_name", "call_id", "arguments")
        _typed(cls, members, dict.fromkeys(texts, _TEXT))
        _typed(
            cls,
            members,
            {"max_attempts": (int,), "timeout": _MAYBE_NUMBER, "retry_delay": _NUMBER},
        )
        return cls(**members)


@dataclass(frozen=True)
class TaskResult:
    """What a worker's attempt made of the call: the tool's output, or what it raised.

    JSON: {"kind": "ok" | "error", "output", "error_type", "error"}. "ok": `output` is the
    returned value, encoded (`serde.dump_value`); "error": the tool raised, `error_type` is the
    exception's qualified name and `error` its message (the run shows the model the SDK's
    failure text made from it, as for a local tool).
    """

    kind: TaskOutcome
    output: Any | None = None
    error_type: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> TaskResult:
        members = _members(cls, data)
        _one_of(members["kind"], TASK_OUTCOMES, "task outcome")
        _typed(cls, members, {"error_type": _MAYBE_TEXT, "error": _MAYBE_TEXT})
        return cls(**members)


@dataclass(frozen=True)
class TaskLease:
    """One attempt's hold on a task: what fences its heartbeats and its result.

    JSON: {"task_id", "owner", "attempt", "lease_seconds"}. Once another attempt has the task,
    or the task is settled, a write under this lease commits nothing (`TaskLeaseLostError`).
    """

    task_id: str
    owner: str
    attempt: int
    lease_seconds: float

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> TaskLease:
        members = _members(cls, data)
        _typed(
            cls,
            members,
            {"task_id": _TEXT, "owner": _TEXT, "attempt": (int,), "lease_seconds": _NUMBER},
        )
        return cls(**members)


@dataclass(frozen=True)
class TaskRecord:
    """A task as the engine holds it.

    JSON: one member per field, `result` as its own JSON form (or null). `attempts` counts the
    attempts started so far (the running one included); `owner` and `lease_expires_at` name the
    running attempt's holder and when its lease runs out; `available_at` is when a pending task
    may be claimed; `error` is why the last attempt ended without a result (its worker died, it
    timed out), and, once `failed`, why the task failed. Times: seconds since the epoch.
    """

    id: str
    run_id: str
    call_key: str
    queue: str
    tool_name: str
    call_id: str
    arguments: str
    context: Any | None
    status: TaskStatus
    attempts: int
    max_attempts: int
    timeout: float | None
    retry_delay: float
    owner: str | None
    lease_expires_at: float | None
    available_at: float
    result: TaskResult | None
    error: str | None
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        data = _plain(self)
        data["result"] = None if self.result is None else self.result.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> TaskRecord:
        members = _members(cls, data)
        _one_of(members["status"], TASK_STATUSES, "task status")
        if members["result"] is not None:
            members["result"] = TaskResult.from_json(members["result"])
        return cls(**members)

    def held(self, lease_seconds: float) -> TaskLease:
        """The lease of the attempt running it now (a claimed task); ValueError otherwise."""
        if self.status != "running" or self.owner is None:
            raise ValueError(f"task {self.id} is {self.status}, not held by an attempt")
        return TaskLease(self.id, self.owner, self.attempts, lease_seconds)

    def abandoned(self, now: float, dead: Callable[[str], bool]) -> str | None:
        """Why nobody works on this running task any more, if so: its attempt's lease expired
        (at `now`, seconds since the epoch), or `dead(owner)` (`owner.owner_is_dead`) says its
        worker died. None for a task not running, or held by a live attempt."""
        if self.status != "running" or self.owner is None:
            return None
        if self.lease_expires_at is not None and self.lease_expires_at < now:
            return f"its worker ({self.owner}) stopped renewing its lease, which expired"
        if dead(self.owner):
            return f"its worker ({self.owner}) died"
        return None


# The longest wait between two attempts of a task, however many attempts came before.
MAX_RETRY_DELAY = 300.0


def retry_delay(base: float, attempt: int) -> float:
    """How long a task waits after its attempt number `attempt` ended without a result."""
    return float(min(base * 2 ** max(0, attempt - 1), max(base, MAX_RETRY_DELAY)))


def _plain(record: Any) -> dict[str, Any]:
    # Shallow on purpose: the values are JSON data already (dataclasses.asdict would deep-copy
    # every payload).
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


# -- approvals (issue #12): the calls a run waits on, and the state it resumes from ---------------

ApprovalStatus = Literal["pending", "approved", "rejected"]
APPROVAL_STATUSES: tuple[str, ...] = get_args(ApprovalStatus)


@dataclass(frozen=True)
class Approval:
    """One tool call a run stopped for, and its decision once made (`status` "approved" or
    "rejected", with who decided, when, and `always`: the tool's later calls too). `arguments`
    is the raw JSON arguments string the model wrote; `policy` the rule that asked, when a
    `runplane.policy` rule did. The API's Approval JSON is exactly `to_json()`."""

    call_id: str
    tool_name: str
    arguments: str
    agent_name: str
    key: str
    status: ApprovalStatus = "pending"
    always: bool = False
    message: str | None = None
    requested_at: float = 0.0
    decided_at: float | None = None
    decided_by: str | None = None
    policy: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Any) -> Approval:
        m = _members(cls, data)
        for name in ("call_id", "tool_name", "arguments", "agent_name", "key"):
            if not isinstance(m[name], str):
                raise ValueError(f"an Approval's {name!r} is a string, got {m[name]!r:.80}")
        if m.get("status", "pending") not in APPROVAL_STATUSES:
            raise ValueError(
                f"an Approval's status is one of {', '.join(APPROVAL_STATUSES)}, "
                f"got {m.get('status')!r:.80}"
            )
        if not isinstance(m.get("always", False), bool):
            raise ValueError("an Approval's 'always' is true or false")
        return cls(**m)

    @property
    def decided(self) -> bool:
        return self.status != "pending"


@dataclass(frozen=True)
class Snapshot:
    """What a run that stopped for approval resumes from: the SDK's `RunState.to_json()`, the
    model calls made before it (`model_calls`: where the resumed run's journal cursor starts)
    and the calls it waits on. An engine seals it when storing it and verifies the seal when
    reading it back (`Engine.load_snapshot`); the seal's key never leaves the engine."""

    state: dict[str, Any]
    model_calls: int
    approvals: list[Approval]

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "model_calls": self.model_calls,
            "approvals": [a.to_json() for a in self.approvals],
        }

    @classmethod
    def from_json(cls, data: Any) -> Snapshot:
        m = _members(cls, data)
        if not isinstance(m["state"], dict):
            raise ValueError("a Snapshot's 'state' is an object (RunState.to_json())")
        calls = m["model_calls"]
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            raise ValueError("a Snapshot's 'model_calls' is a count (an integer from 0)")
        if not isinstance(m["approvals"], list):
            raise ValueError("a Snapshot's 'approvals' is a list")
        m["approvals"] = [Approval.from_json(a) for a in m["approvals"]]
        return cls(**m)


def settled_by(task: TaskRecord, lease: TaskLease) -> bool:
    """Whether `task` was settled (completed, failed, or given back for a retry) by the attempt
    `lease` names, with no attempt after it: how a result or failure sent again, after its
    answer or its database link was lost, is recognised as the one that committed."""
    return task.attempts == lease.attempt and task.owner is None and task.status != "running"
