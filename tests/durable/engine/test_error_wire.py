"""Durable errors cross a wire: a client rebuilds a server's error as the same class, fields and
message, from its JSON."""

from __future__ import annotations

import copy
import json
import pickle
import sqlite3
from pathlib import Path

import pytest
from agents.exceptions import AgentsException
from runplane_durable import errors
from runplane_durable.errors import (
    AgentRefError,
    DatabaseError,
    DurableError,
    ForkSessionError,
    ForkStepError,
    JournalSerializationError,
    RemoteContextError,
    ReplayDivergenceError,
    RunCancelledError,
    RunFailedError,
    RunFinishedError,
    RunInputMismatchError,
    RunLeasedError,
    RunNotFoundError,
    SchemaVersionError,
    ServerError,
    TaskLeaseLostError,
    TaskNotFoundError,
    UnstorableNameError,
    error_from_wire,
)
from runplane_durable.local.failures import database_error, describe

# One of each, with the message each builds from its fields (the texts the backend has always
# shown; the tests that provoke them check them too).
EXAMPLES: list[tuple[DurableError, str]] = [
    (DurableError("the demo's run failed: boom"), "the demo's run failed: boom"),
    (
        DatabaseError("cannot use the SQLite database at /x: disk full. Free space.", database="x"),
        "cannot use the SQLite database at /x: disk full. Free space.",
    ),
    (
        ServerError("cannot reach the runplane server at http://h:1", server="http://h:1"),
        "cannot reach the runplane server at http://h:1",
    ),
    (
        SchemaVersionError(database="SQLite database at /x", found=99, supported=1),
        "the SQLite database at /x has schema version 99, written by a newer runplane-durable "
        "(this one understands up to 1). Upgrade runplane-durable (`pip install -U "
        "runplane-durable`); nothing was written to it.",
    ),
    (
        RunNotFoundError(run_id="r-1", database="SQLite database at /x"),
        "no run 'r-1' in the SQLite database at /x; `runplane runs list` shows the runs there.",
    ),
    (
        RunNotFoundError(run_id="r-1", vanished=True),
        "run 'r-1' vanished while it was being opened; retry",
    ),
    (
        RunNotFoundError(database="SQLite database at /x", starts="ab", ends="yz", matches=2),
        "2 runs in the SQLite database at /x has an id that starts with 'ab' and ends with "
        "'yz'; `runplane runs list --json` shows the ids whole.",
    ),
    (
        RunLeasedError(run_id="r-1", holder="host pid 7", lease_expires_in=12.4),
        "run 'r-1' is being executed by host pid 7 (lease valid for another 12 s); one run "
        "never executes twice at once. Wait for that process to finish, or for its lease to "
        "expire if it died.",
    ),
    (
        RunLeasedError(run_id="r-1", taken_over=True),
        "run 'r-1' was taken over by another process while this one ran it (its lease expired: "
        "was this process stalled?). This process stops here; the other one continues the run "
        "from its journal.",
    ),
    (
        RunInputMismatchError(
            run_id="r-1", what_changed="agent", recorded_agent="triage", agent="sales"
        ),
        "run 'r-1' was started with agent 'triage', not 'sales'; a run id names one run. Use a "
        "new run id, or resume it with agent 'triage' (`runplane runs show r-1`).",
    ),
    (
        RunInputMismatchError(run_id="r-1", what_changed="input"),
        "run 'r-1' was started with a different input; a run id names one run. Use a new run "
        "id, or resume it with the same input (`runplane runs show r-1` shows it).",
    ),
    (
        RunCancelledError(run_id="r-1"),
        "run 'r-1' was cancelled; it cannot be resumed. Use a new run id.",
    ),
    (
        RunCancelledError(run_id="r-1", by="web-1 pid 812 user ann", mode="after_turn"),
        "run 'r-1' was cancelled from another process (web-1 pid 812 user ann, after its "
        "current turn); it cannot be resumed. Use a new run id.",
    ),
    (
        RunCancelledError(run_id="r-1", by="web-1 pid 812 user ann", mode="immediate"),
        "run 'r-1' was cancelled from another process (web-1 pid 812 user ann, immediately); "
        "it cannot be resumed. Use a new run id.",
    ),
    (
        RunFinishedError(run_id="r-1", status="completed"),
        "run 'r-1' already finished (completed); there is nothing to cancel. "
        "`runplane runs show r-1` shows its outcome.",
    ),
    (
        UnstorableNameError(what="agent name", value="'a\\x00b'", reason="it holds a NUL"),
        "a durable run cannot start with agent 'a\\x00b': it holds a NUL. Rename the agent.",
    ),
    (
        UnstorableNameError(
            what="run id", value="''", reason="a run id must be a non-empty string"
        ),
        "a run id must be a non-empty string, got ''",
    ),
    (
        ReplayDivergenceError(run_id="r-1", kind="model", step=3, requested="gpt-x, 2 items"),
        "run 'r-1' is finished, but replaying it asked for model call #3 (gpt-x, 2 items), "
        "which it never made. The program's agents or tools changed since the run; start a new "
        "run id.",
    ),
    (
        ReplayDivergenceError(
            run_id="r-1",
            kind="model",
            step=2,
            requested="gpt-y",
            recorded="gpt-x",
            what_changed="the model",
        ),
        "replay of run 'r-1' diverged at model call #2: the journal recorded a request for "
        "gpt-x, but the program now asks gpt-y. What changed: the model. The agent definition "
        "changed since the run started. Restore the program as it was to resume this run, or "
        "start a new run id.",
    ),
    (
        ReplayDivergenceError(run_id="r-1", kind="tool", step="0:call-a"),
        "run 'r-1' is finished, but replaying it ran tool call '0:call-a', which it never made. "
        "The program changed since the run; start a new run id.",
    ),
    (
        JournalSerializationError("tool 't' returned ...", path='result["when"]', leaf="datetime"),
        "tool 't' returned ...",
    ),
    (TaskNotFoundError(task_id="t-1"), "no remote tool task 't-1'"),
    (
        TaskLeaseLostError(task_id="t-1", attempt=1, status="running", attempts=2),
        "task 't-1': attempt 1 no longer holds it (the task is running at attempt 2: this "
        "attempt's lease expired or its worker was taken for dead, and the task went on without "
        "it). Nothing this attempt wrote was recorded; the task's result is recorded once, by "
        "the attempt that holds it.",
    ),
    (
        RemoteContextError(
            tool="render", context_type="app.Deps", path="context.db", leaf="sqlite3.Connection"
        ),
        "remote tool 'render' runs on a worker, which gets the run's context, but this run's "
        "context, a app.Deps, cannot be sent (context.db: sqlite3.Connection): a worker "
        "receives JSON data, a pydantic model or a dataclass of those. Pass such a context, or "
        "make the tool with remote(..., send_context=False) if it does not use it. Nothing was "
        "enqueued; everything journaled so far is kept, so the run resumes under its id once "
        "fixed.",
    ),
    (
        RunFailedError(run_id="r-1", error_type="builtins.ValueError", error="bad order"),
        "run 'r-1' failed: ValueError: bad order (`runplane runs show r-1` has its history)",
    ),
    (
        AgentRefError(ref="app:triage", problem="module 'app' has no attribute 'triage'"),
        "agent reference 'app:triage': module 'app' has no attribute 'triage'",
    ),
    (
        ForkStepError(run_id="r-1", at=12, last=10),
        "run 'r-1' has steps 1 to 10 (the numbers `runplane runs show r-1` prints); 12 is not "
        "one of them. Give a step from 1 (nothing shared) to 10: the fork shares the journal "
        "before it and goes on live from there.",
    ),
    (
        ForkStepError(run_id="r-1", at=1, last=0),
        "run 'r-1' has no steps to fork at (its event log is empty)",
    ),
    (
        ForkSessionError(run_id="turn-2", session_steps=4),
        "run 'turn-2' used a session= (its journal holds 4 session read(s) and write(s)), and a "
        "run with a session cannot be forked: the fork runs on a worker or --here without that "
        "session, so its model would not be asked what the run's was, and its turns would be "
        "saved nowhere. Nothing was written. To check today's code against it, replay it "
        "(`runplane runs replay turn-2`); to try another ending, run the agent again with a "
        "copy of the session as it was before the run.",
    ),
    (
        RunInputMismatchError(run_id="f-1", what_changed="fork"),
        "run 'f-1' exists already and is not that fork (the same run forked at the same step); "
        "a run id names one run. Choose another id for the fork, or leave it out for a new one.",
    ),
]


@pytest.mark.parametrize(("error", "message"), EXAMPLES, ids=lambda x: type(x).__name__)
def test_an_error_comes_back_from_the_wire_as_it_was(error: DurableError, message: str) -> None:
    assert str(error) == message
    wire = json.loads(json.dumps(error.to_wire()))
    assert wire == {"code": error.code, "message": message, "fields": error.fields}
    back = error_from_wire(wire)
    assert type(back) is type(error)
    assert (back.code, str(back), back.message, back.fields) == (
        error.code,
        message,
        message,
        error.fields,
    )
    for name, value in error.fields.items():
        assert getattr(back, name) == value
    assert isinstance(back, AgentsException)  # still escapes a tool as itself
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.fields) == (type(error), message, error.fields)
    copied = copy.copy(error)
    assert (type(copied), str(copied), copied.fields) == (type(error), message, error.fields)


def test_a_copy_keeps_what_the_sdk_attached() -> None:
    error = RunLeasedError(run_id="r-1", taken_over=True)
    error.run_data = "the SDK's run details"  # type: ignore[assignment]
    assert copy.copy(error).run_data == "the SDK's run details"
    assert pickle.loads(pickle.dumps(error)).run_data == "the SDK's run details"


def test_a_driver_failure_names_the_database_and_the_problem(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    error = database_error(sqlite3.OperationalError("database or disk is full"), url)
    assert error.fields == {"database": describe(url), "problem": "database or disk is full"}
    assert str(error).startswith(f"cannot use the {describe(url)}: database or disk is full. ")
    assert error_from_wire(error.to_wire()).fields == error.fields


def test_fields_are_what_the_message_was_built_from() -> None:
    error = RunLeasedError(run_id="r-1", holder="h", lease_expires_in=3.0)
    assert (error.run_id, error.holder, error.lease_expires_in, error.taken_over) == (
        "r-1",
        "h",
        3.0,
        False,
    )
    assert RunCancelledError(run_id="r-9").run_id == "r-9"
    assert not isinstance(RunCancelledError(run_id="r"), RunInputMismatchError)


def test_every_durable_error_has_its_own_stable_code() -> None:
    classes = [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), Exception)
    ]
    codes = {cls: cls.code for cls in classes}
    assert len(set(codes.values())) == len(classes)
    assert codes == {
        DurableError: "durable",
        DatabaseError: "database",
        SchemaVersionError: "schema_version",
        ServerError: "server",
        RunNotFoundError: "run_not_found",
        RunLeasedError: "run_leased",
        RunInputMismatchError: "run_input_mismatch",
        RunCancelledError: "run_cancelled",
        RunFinishedError: "run_finished",
        UnstorableNameError: "unstorable_name",
        ReplayDivergenceError: "replay_divergence",
        JournalSerializationError: "journal_serialization",
        TaskNotFoundError: "task_not_found",
        TaskLeaseLostError: "task_lease_lost",
        RemoteContextError: "remote_context",
        RunFailedError: "run_failed",
        AgentRefError: "agent_ref",
        ForkStepError: "fork_step",
        ForkSessionError: "fork_session",
    }


def test_a_second_class_cannot_take_a_code() -> None:
    with pytest.raises(TypeError, match="error code 'run_leased' is RunLeasedError's already"):

        class Again(DurableError):
            code = "run_leased"


def test_an_unknown_code_comes_back_as_a_durable_error_that_keeps_it() -> None:
    wire = {"code": "run_paused", "message": "run 'r' is paused", "fields": {"run_id": "r"}}
    back = error_from_wire(wire)
    assert type(back) is DurableError
    assert (str(back), back.fields, back.code) == (
        "run 'r' is paused",
        {"run_id": "r"},
        "run_paused",
    )
    assert back.to_wire() == wire
    assert DurableError.code == "durable"  # the class is untouched


@pytest.mark.parametrize(
    "data",
    [None, "run_leased", {"message": "m"}, {"code": "database"}, {"code": 1, "message": "m"}],
)
def test_what_is_not_an_error_on_the_wire_is_refused(data: object) -> None:
    with pytest.raises(ValueError, match="a durable error on the wire is an object"):
        error_from_wire(data)
