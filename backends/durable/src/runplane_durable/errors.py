"""Errors of the durable backend, each with a stable code, its fields and a wire form.

Each says what happened and what to do; none loses data. An error's message is built from its
fields (the run id, the step, the lease holder, ...), and `to_wire()` gives all three as JSON
data: {"code": "run_leased", "message": "...", "fields": {"run_id": ..., ...}}. A client that
gets that object from a server calls `error_from_wire(data)` and raises the same class with the
same fields and message as the server did; an unknown code (a newer server) comes back as a
plain `DurableError` that keeps the code, the message and the fields. Codes never change once
released; a new error gets a new code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agents.exceptions import AgentsException

from runplane import RunplaneError

from .records import JournalKind

__all__ = [
    "AgentRefError",
    "DatabaseError",
    "DurableError",
    "ForkSessionError",
    "ForkStepError",
    "JournalSerializationError",
    "RemoteContextError",
    "ReplayDivergenceError",
    "RunCancelledError",
    "RunFailedError",
    "RunFinishedError",
    "RunInputMismatchError",
    "RunLeasedError",
    "RunNotFoundError",
    "SchemaVersionError",
    "ServerError",
    "TaskLeaseLostError",
    "TaskNotFoundError",
    "UnstorableNameError",
    "error_from_wire",
]

_BY_CODE: dict[str, type[DurableError]] = {}


class DurableError(RunplaneError, AgentsException):
    """Base class for the durable backend's own errors.

    An `AgentsException`, because the SDK lets those raised while a tool runs pass through as
    they are, and wraps any other in `UserError("Error running tool ...")`: a lost lease or a
    failed write must reach the caller as itself.

    `fields` holds the JSON values the message was built from; each is also an attribute.
    """

    code: ClassVar[str] = "durable"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        for name, value in fields.items():
            setattr(self, name, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        taken = _BY_CODE.get(cls.code)
        if taken is not None and "code" in cls.__dict__:
            raise TypeError(f"error code {cls.code!r} is {taken.__name__}'s already")
        if "code" in cls.__dict__:
            _BY_CODE[cls.code] = cls

    def to_wire(self) -> dict[str, Any]:
        """{"code", "message", "fields"}: what a server sends, and `error_from_wire` takes."""
        return {"code": self.code, "message": self.message, "fields": dict(self.fields)}

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy (a process pool, say) rebuild the error from its wire form: the
        # subclasses' keyword constructors cannot be called with `args`, which holds the message
        # alone. The attributes follow as the state, as they do for any exception.
        return (error_from_wire, (self.to_wire(),), self.__dict__)


def error_from_wire(data: Any) -> DurableError:
    """The error a server's `to_wire()` object describes: the same class, fields and message.

    An unknown code gives a `DurableError` that keeps the code (so passing it on loses nothing).
    """
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("code"), str)
        or not isinstance(data.get("message"), str)
        or not isinstance(data.get("fields", {}), dict)
    ):
        raise ValueError(
            "a durable error on the wire is an object with a string 'code', a string 'message' "
            f"and an object 'fields', got {data!r:.200}"
        )
    code: str = data["code"]
    fields: dict[str, Any] = data.get("fields", {})
    cls = _BY_CODE.get(code, DurableError)
    error = cls.__new__(cls)
    # The server's message as it was (a client of another version might word it differently).
    DurableError.__init__(error, data["message"], **fields)
    if cls is DurableError and code != DurableError.code:
        error.code = code  # type: ignore[misc]
    return error


class DatabaseError(DurableError):
    """The run database cannot be opened, read or written.

    Its messages come from many places (the driver's failure, a setting, a path), so the message
    is the error's text; `database` names the database when known, `problem` the driver's
    failure when there was one.
    """

    code = "database"
    database: str | None
    problem: str | None

    def __init__(
        self, message: str, *, database: str | None = None, problem: str | None = None
    ) -> None:
        super().__init__(message, database=database, problem=problem)


class SchemaVersionError(DatabaseError):
    """The database was written by a newer runplane-durable than this one."""

    code = "schema_version"
    database: str
    found: int
    supported: int

    def __init__(self, *, database: str, found: int, supported: int) -> None:
        DurableError.__init__(
            self,
            f"the {database} has schema version {found}, written by a newer "
            f"runplane-durable (this one understands up to {supported}). Upgrade "
            "runplane-durable (`pip install -U runplane-durable`); nothing was written to it.",
            database=database,
            found=found,
            supported=supported,
        )


class ServerError(DatabaseError):
    """The runplane server a program runs on (RUNPLANE_SERVER_URL) stayed unreachable past the
    retry bound, or answered with something that is not the API's.

    A `DatabaseError`: to a run it is the same thing, its runs cannot be kept. Fields: `server`
    (the URL), `problem` (what went wrong, as the client saw it), `status` (the HTTP status, when
    there was an answer).
    """

    code = "server"
    server: str
    status: int | None

    def __init__(
        self, message: str, *, server: str, problem: str | None = None, status: int | None = None
    ) -> None:
        DurableError.__init__(
            self, message, database=server, server=server, problem=problem, status=status
        )


class RunNotFoundError(DurableError, LookupError):
    """No run with this id exists in the database.

    Fields: `run_id` and `database`; `vanished` when it was deleted while being opened;
    `starts`, `ends` and `matches` when a run was looked for by an abbreviated id.
    """

    code = "run_not_found"
    run_id: str | None
    database: str | None

    def __init__(
        self,
        *,
        run_id: str | None = None,
        database: str | None = None,
        vanished: bool = False,
        starts: str | None = None,
        ends: str | None = None,
        matches: int = 0,
    ) -> None:
        fields: dict[str, Any] = {"run_id": run_id, "database": database}
        if starts is not None or ends is not None:
            which = "no run" if not matches else f"{matches} runs"
            message = (
                f"{which} in the {database} has an id that starts with {starts!r} and ends "
                f"with {ends!r}; `runplane runs list --json` shows the ids whole."
            )
            fields.update(starts=starts, ends=ends, matches=matches)
        elif vanished:
            message = f"run {run_id!r} vanished while it was being opened; retry"
            fields["vanished"] = True
        else:
            message = (
                f"no run {run_id!r} in the {database}; `runplane runs list` shows the runs there."
            )
        super().__init__(message, **fields)


class RunLeasedError(DurableError):
    """Another live process holds this run's lease: two executions of one run are refused.

    Fields: `run_id`; `holder` and `lease_expires_in` (seconds) when opening the run found it
    held; `taken_over` when this process held it and lost it to another; `status` when a
    worker's claim (`RunSpec.claim_status`) found the run in another status than it was listed
    in (another process took it up and finished it since).
    """

    code = "run_leased"
    run_id: str
    holder: str | None
    lease_expires_in: float | None
    taken_over: bool
    status: str | None

    def __init__(
        self,
        *,
        run_id: str,
        holder: str | None = None,
        lease_expires_in: float | None = None,
        taken_over: bool = False,
        status: str | None = None,
    ) -> None:
        if status is not None:
            message = (
                f"run {run_id!r} is {status} now: another process took it up since it was "
                "listed as claimable, so this claim does nothing (one run never executes twice)."
            )
        elif taken_over:
            message = (
                f"run {run_id!r} was taken over by another process while this one ran it "
                "(its lease expired: was this process stalled?). This process stops here; the "
                "other one continues the run from its journal."
            )
        else:
            message = (
                f"run {run_id!r} is being executed by {holder} (lease valid for "
                f"another {max(0.0, lease_expires_in or 0.0):.0f} s); one run never "
                "executes twice at once. Wait for that process to finish, or for its "
                "lease to expire if it died."
            )
        super().__init__(
            message,
            run_id=run_id,
            holder=holder,
            lease_expires_in=lease_expires_in,
            taken_over=taken_over,
            status=status,
        )


class RunInputMismatchError(DurableError):
    """A run id was reused with a different starting agent or input.

    Fields: `run_id`, `what_changed` ("agent" or "input"); for an agent, `recorded_agent` (the
    run's) and `agent` (the one given now).
    """

    code = "run_input_mismatch"
    run_id: str
    what_changed: str
    recorded_agent: str | None
    agent: str | None

    def __init__(
        self,
        *,
        run_id: str,
        what_changed: str,
        recorded_agent: str | None = None,
        agent: str | None = None,
    ) -> None:
        if what_changed == "fork":
            message = (
                f"run {run_id!r} exists already and is not that fork (the same run forked at "
                "the same step); a run id names one run. Choose another id for the fork, or "
                "leave it out for a new one."
            )
        elif what_changed == "agent":
            message = (
                f"run {run_id!r} was started with agent {recorded_agent!r}, not "
                f"{agent!r}; a run id names one run. Use a new run id, or resume it "
                f"with agent {recorded_agent!r} (`runplane runs show {run_id}`)."
            )
        else:
            message = (
                f"run {run_id!r} was started with a different input; a run id names one "
                "run. Use a new run id, or resume it with the same input "
                f"(`runplane runs show {run_id}` shows it)."
            )
        super().__init__(
            message,
            run_id=run_id,
            what_changed=what_changed,
            recorded_agent=recorded_agent,
            agent=agent,
        )


class RunCancelledError(DurableError):
    """The run was cancelled: it is over for good, and its id cannot run again.

    Fields: `run_id`; `by` (who asked: "host pid N user U") and `mode` ("immediate" or
    "after_turn") when it was cancelled from another process (`runplane runs cancel`,
    `Runner.cancel`, the API) while this process ran it. Not a `RunInputMismatchError`: that one
    says "resume this id with its own agent and input", which would never work here, so a caller
    that retries on a mismatch must not see this as one.
    """

    code = "run_cancelled"
    run_id: str

    def __init__(self, *, run_id: str, by: str | None = None, mode: str | None = None) -> None:
        fields: dict[str, Any] = {"run_id": run_id}
        if by is None and mode is None:
            message = f"run {run_id!r} was cancelled; it cannot be resumed. Use a new run id."
        else:
            how = {"after_turn": "after its current turn"}.get(mode or "", "immediately")
            message = (
                f"run {run_id!r} was cancelled from another process ({by or 'unknown'}, "
                f"{how}); it cannot be resumed. Use a new run id."
            )
            fields.update(by=by, mode=mode)
        super().__init__(message, **fields)


class RunFinishedError(DurableError):
    """A cancel asked for a run that already finished (completed or failed): nothing to stop.

    Fields: `run_id`, `status` (its stored status). A cancelled run is not refused: cancelling
    it again returns it as it is.
    """

    code = "run_finished"
    run_id: str
    status: str

    def __init__(self, *, run_id: str, status: str) -> None:
        super().__init__(
            f"run {run_id!r} already finished ({status}); there is nothing to cancel. "
            f"`runplane runs show {run_id}` shows its outcome.",
            run_id=run_id,
            status=status,
        )


class UnstorableNameError(DurableError, ValueError):
    """A run id or agent name that not every run database can store (refused on all of them).

    Fields: `what` ("run id" or "agent name"), `value` (as shown, escaped and shortened) and
    `reason`.
    """

    code = "unstorable_name"
    what: str
    value: str
    reason: str

    def __init__(self, *, what: str, value: str, reason: str) -> None:
        if what == "agent name":
            message = f"a durable run cannot start with agent {value}: {reason}. Rename the agent."
        else:
            message = f"{reason}, got {value}"
        super().__init__(message, what=what, value=value, reason=reason)


class ReplayDivergenceError(DurableError):
    """A replayed run asked for something other than what its journal recorded.

    Raised instead of calling the model: continuing would mix two different histories. Fields:
    `run_id`, `kind` ("model", "tool" or "session"), `step` (the model call's number, the tool
    call's key, or the session step's number), `requested` (what the program asks now), and,
    when the journal has that step, `recorded` (what it asked then) and `what_changed`.
    """

    code = "replay_divergence"
    run_id: str
    kind: JournalKind
    step: int | str
    requested: str | None
    recorded: str | None
    what_changed: str | None

    def __init__(
        self,
        *,
        run_id: str,
        kind: JournalKind,
        step: int | str,
        requested: str | None = None,
        recorded: str | None = None,
        what_changed: str | None = None,
    ) -> None:
        if kind == "session":
            message = (
                f"replay of run {run_id!r} diverged at session step #{step}: the journal "
                f"recorded {recorded or 'no such step'}, but the run now does {requested}. "
                f"{what_changed or 'The program changed since the run.'} Restore the program "
                "(or the session) as it was to resume this run, or start a new run id."
            )
        elif kind == "tool":
            message = (
                f"run {run_id!r} is finished, but replaying it ran tool call {step!r}, which it "
                "never made. The program changed since the run; start a new run id."
            )
        elif what_changed is None:
            message = (
                f"run {run_id!r} is finished, but replaying it asked for model call #{step} "
                f"({requested}), which it never made. The program's agents or tools changed "
                "since the run; start a new run id."
            )
        else:
            message = (
                f"replay of run {run_id!r} diverged at model call #{step}: the journal "
                f"recorded a request for {recorded}, but the program now asks {requested}. "
                f"What changed: {what_changed}. The agent definition changed since the run "
                "started. Restore the program as it was to resume this run, or start a new run "
                "id."
            )
        super().__init__(
            message,
            run_id=run_id,
            kind=kind,
            step=step,
            requested=requested,
            recorded=recorded,
            what_changed=what_changed,
        )


class JournalSerializationError(DurableError):
    """A tool output or final output the journal cannot store.

    Its messages say what returned the value and what to return instead, so the message is the
    error's text; `path` says where in the value (`result["when"]`), `leaf` the type found
    there, when known.
    """

    code = "journal_serialization"
    path: str | None
    leaf: str | None

    def __init__(self, message: str, *, path: str | None = None, leaf: str | None = None) -> None:
        super().__init__(message, path=path, leaf=leaf)


class TaskNotFoundError(DurableError, LookupError):
    """No remote tool task with this id exists. Fields: `task_id`."""

    code = "task_not_found"
    task_id: str

    def __init__(self, *, task_id: str) -> None:
        super().__init__(f"no remote tool task {task_id!r}", task_id=task_id)


class TaskLeaseLostError(DurableError):
    """A worker's attempt wrote to a task it no longer holds: its write committed nothing.

    Another attempt claimed the task (this one's lease expired, or its worker was found dead),
    or the task was settled meanwhile. Fields: `task_id`, `attempt` (the writer's), `status` and
    `attempts` (the task's now).
    """

    code = "task_lease_lost"
    task_id: str
    attempt: int
    status: str
    attempts: int

    def __init__(self, *, task_id: str, attempt: int, status: str, attempts: int) -> None:
        super().__init__(
            f"task {task_id!r}: attempt {attempt} no longer holds it (the task is {status} at "
            f"attempt {attempts}: this attempt's lease expired or its worker was taken for dead, "
            "and the task went on without it). Nothing this attempt wrote was recorded; the "
            "task's result is recorded once, by the attempt that holds it.",
            task_id=task_id,
            attempt=attempt,
            status=status,
            attempts=attempts,
        )


class RemoteContextError(DurableError):
    """A remote tool was called in a run whose context cannot be sent to a worker.

    Fields: `tool` (its name), `context_type` (the context's type), `path` and `leaf` (where in
    the context the first part that cannot be sent is, and its type).
    """

    code = "remote_context"
    tool: str
    context_type: str
    path: str | None
    leaf: str | None

    def __init__(
        self, *, tool: str, context_type: str, path: str | None = None, leaf: str | None = None
    ) -> None:
        where = f" ({path}: {leaf})" if path is not None else ""
        super().__init__(
            f"remote tool {tool!r} runs on a worker, which gets the run's context, but this "
            f"run's context, a {context_type}, cannot be sent{where}: a worker receives JSON "
            "data, a pydantic model or a dataclass of those. Pass such a context, or make the "
            f"tool with remote(..., send_context=False) if it does not use it. Nothing was "
            "enqueued; everything journaled so far is kept, so the run resumes under its id "
            "once fixed.",
            tool=tool,
            context_type=context_type,
            path=path,
            leaf=leaf,
        )


class RunFailedError(DurableError):
    """The run a handle waits for failed (`RunHandle.result()`): `error_type` is the exception's
    qualified name as stored, `error` its message. The run stays resumable: a worker, or
    `Runner.resume`, may run it again from its journal."""

    code = "run_failed"
    run_id: str
    error_type: str | None
    error: str | None

    def __init__(self, *, run_id: str, error_type: str | None, error: str | None) -> None:
        raised = (error_type or "an error").removeprefix("builtins.")
        super().__init__(
            f"run {run_id!r} failed: {raised}"
            + (f": {error}" if error else "")
            + f" (`runplane runs show {run_id}` has its history)",
            run_id=run_id,
            error_type=error_type,
            error=error,
        )


class ForkStepError(DurableError, ValueError):
    """A fork's step (`Engine.fork_run`, `runplane runs fork --at`) outside the run's steps.

    Fields: `run_id`, `at` (the step asked for), `last` (the run's last step, the highest event
    seq `runplane runs show` prints; 0 for a run with no events)."""

    code = "fork_step"
    run_id: str
    at: int
    last: int

    def __init__(self, *, run_id: str, at: int, last: int) -> None:
        if last < 1:
            message = f"run {run_id!r} has no steps to fork at (its event log is empty)"
        else:
            message = (
                f"run {run_id!r} has steps 1 to {last} (the numbers `runplane runs show "
                f"{run_id}` prints); {at} is not one of them. Give a step from 1 (nothing "
                f"shared) to {last}: the fork shares the journal before it and goes on live "
                "from there."
            )
        super().__init__(message, run_id=run_id, at=at, last=last)


class ForkSessionError(DurableError, ValueError):
    """A fork (`Engine.fork_run`, `runplane runs fork`) of a run that used a `session=`.

    Such a run's model calls were asked the session's history, which its journal holds as
    session steps. A fork runs on a worker or `--here`, where that session is not: replaying
    the shared calls without it would ask the model something else, and the fork's own turns
    would be saved nowhere. So it is refused, whatever the step. Fields: `run_id`,
    `session_steps` (the session reads and writes its journal holds)."""

    code = "fork_session"
    run_id: str
    session_steps: int

    def __init__(self, *, run_id: str, session_steps: int) -> None:
        super().__init__(
            f"run {run_id!r} used a session= (its journal holds {session_steps} session "
            "read(s) and write(s)), and a run with a session cannot be forked: the fork runs "
            "on a worker or --here without that session, so its model would not be asked what "
            "the run's was, and its turns would be saved nowhere. Nothing was written. To "
            f"check today's code against it, replay it (`runplane runs replay {run_id}`); to "
            "try another ending, run the agent again with a copy of the session as it was "
            "before the run.",
            run_id=run_id,
            session_steps=session_steps,
        )


class AgentRefError(DurableError, ValueError):
    """An agent reference ("pkg.module:attr") that names no agent: malformed, a module that does
    not import, an attribute that is missing or not an `Agent`. `problem` says which."""

    code = "agent_ref"
    ref: str
    problem: str

    def __init__(self, *, ref: str, problem: str) -> None:
        super().__init__(f"agent reference {ref!r}: {problem}", ref=ref, problem=problem)


class RunStateInvalidError(DurableError):
    """A run's stored approval snapshot (its `RunState`) or a stored decision failed its
    integrity check: it was changed outside runplane, or it was sealed by another database
    (copied from elsewhere). Nothing of it is used, so no tool runs on its word.

    Fields: `run_id`, `problem` (what failed: the snapshot's seal, a decision's seal, a
    snapshot that names other calls than the run waits for).
    """

    code = "run_state_invalid"
    run_id: str
    problem: str

    def __init__(self, *, run_id: str, problem: str) -> None:
        super().__init__(
            f"run {run_id!r} cannot resume: {problem}. The stored state was not written by "
            "this database's runplane (changed by hand, or copied from another database), so "
            "it is refused and no tool runs on it. Start a new run, or "
            f"`runplane runs cancel {run_id}`.",
            run_id=run_id,
            problem=problem,
        )


class ApprovalNotFoundError(DurableError):
    """A decision named a call the run never waited for (or a run that never waited).

    Fields: `run_id`, `call_id` (None: the run has no pending call at all), `pending` (the call
    ids waiting now).
    """

    code = "approval_not_found"
    run_id: str
    call_id: str | None
    pending: list[str]

    def __init__(self, *, run_id: str, call_id: str | None, pending: list[str]) -> None:
        waiting = ", ".join(pending) if pending else "none"
        what = (
            f"run {run_id!r} has no call waiting for approval"
            if call_id is None
            else f"run {run_id!r} never waited for call {call_id!r}"
        )
        super().__init__(
            f"{what}; calls waiting now: {waiting}. `runplane runs approvals {run_id}` lists them.",
            run_id=run_id,
            call_id=call_id,
            pending=pending,
        )


class ApprovalConflictError(DurableError):
    """A decision on a call that was decided the other way already, or on a run that is no
    longer waiting (finished, cancelled, running on its decisions).

    Fields: `run_id`, `call_id`, `status` (the call's decision, or the run's status), `decision`
    (the one asked for now: "approve" or "reject").
    """

    code = "approval_conflict"
    run_id: str
    call_id: str | None
    status: str
    decision: str

    def __init__(self, *, run_id: str, call_id: str | None, status: str, decision: str) -> None:
        if call_id is None:
            message = (
                f"run {run_id!r} is {status}, not awaiting approval: a decision ({decision}) "
                "can no longer change it"
            )
        else:
            message = (
                f"call {call_id!r} of run {run_id!r} was {status} already; it cannot be "
                f"decided again the other way ({decision}). A decision is final"
            )
        super().__init__(
            message + f". `runplane runs show {run_id}` shows the run.",
            run_id=run_id,
            call_id=call_id,
            status=status,
            decision=decision,
        )
