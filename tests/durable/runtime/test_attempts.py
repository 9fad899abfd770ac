"""Every execution of a run is an attempt in its history: where it ran, and why it ended.

A real kill -9 is found by the next process, which writes the dead attempt's end ("killed") and
then its own start, saying how much it replays; Ctrl-C, a cancelled task and a lost lease end an
attempt too, each with its reason; the outcome of a run ends its attempt in the same transaction.
A process that resumes a run, or starts a new one under a name the program chose, says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, UserError, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, EventRecord, LocalEngine, run_id
from runplane_durable.attempts import next_number, unended
from runplane_durable.errors import RunLeasedError
from runplane_durable.events import parse
from runplane_durable.records import NewEvent, RunRecord, RunSpec
from support.durable import run_async
from support.durable_programs import TIMEOUT, CrashProgram, final_output

FINAL = "done: TOOL_A-0, TOOL_B-1, TOOL_C-2"


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"  # the PostgreSQL database is shared by the session


def _events(url: str, rid: str) -> list[EventRecord]:
    async def read() -> list[EventRecord]:
        engine = LocalEngine(url)
        try:
            return await engine.list_events(rid)
        finally:
            await engine.dispose()

    result: list[EventRecord] = asyncio.run(read())
    return result


def _attempts(events: list[EventRecord]) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.payload) for e in events if e.type.startswith("attempt_")]


class _Program(CrashProgram):
    """crash_program.py on the database at `url`, SQLite or PostgreSQL."""

    def __init__(self, workdir: Path, url: str) -> None:
        super().__init__(workdir)
        self.url = url

    def _env(self, block: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = super()._env(block, extra)
        env["RUNPLANE_DATABASE_URL"] = self.url
        return env


@pytest.fixture
def program(tmp_path: Path, db_url: str) -> Any:
    prog = _Program(tmp_path, db_url)
    try:
        yield prog
    finally:
        prog.cleanup()


@pytest.mark.slow
def test_a_killed_attempt_is_found_by_the_next_which_says_what_it_replays(
    program: _Program, db_url: str
) -> None:
    rid = _unique("killed")
    first = program.start("run", rid, block="tool_b:start")
    assert program.wait_started(first) == "tool_b:start"
    os.kill(first.pid, signal.SIGKILL)
    _, first_err = first.communicate(timeout=TIMEOUT)
    killed_at = time.time()
    # The program names the run, and it exists nowhere yet: it says where it started it.
    assert f"started new run {rid} in the " in first_err, first_err

    second = program.run("run", rid)
    assert final_output(second) == FINAL
    # model calls #1 and #2 and tool_a's output come from the journal; tool_b was in flight
    assert (
        f"resumed run {rid}: 2 model calls and 1 tool output from the journal (attempt 2, "
        in second.stderr
    ), second.stderr

    events = _events(db_url, rid)
    attempts = _attempts(events)
    assert [(t, p["attempt"]) for t, p in attempts] == [
        ("attempt_started", 1),
        ("attempt_ended", 1),
        ("attempt_started", 2),
        ("attempt_ended", 2),
    ]
    started_1, killed, started_2, ended_2 = (p for _, p in attempts)
    host = socket.gethostname()
    assert (started_1["host"], started_1["pid"]) == (host, first.pid)
    assert started_1["owner"].startswith(f"{host}:{first.pid}:")
    assert (started_1["resumed"], started_1["model_calls"], started_1["tool_outputs"]) == (
        False,
        0,
        0,
    )
    assert killed["reason"] == "killed"
    assert (killed["owner"], killed["pid"]) == (started_1["owner"], first.pid)
    # its last sign of life: after it started, before the kill; found after the kill
    assert started_1["started_at"] <= killed["ended_at"] <= killed_at <= killed["detected_at"]
    assert started_2["pid"] not in (None, first.pid)
    assert (started_2["resumed"], started_2["model_calls"], started_2["tool_outputs"]) == (
        True,
        2,
        1,
    )
    assert killed["detected_at"] <= started_2["started_at"]
    assert ended_2["reason"] == "finished"
    assert ended_2["owner"] == started_2["owner"]
    # The order of the history: the killed attempt's steps, its end, the next attempt's.
    types = [e.type for e in events]
    assert types.index("attempt_ended") > max(
        i for i, e in enumerate(events) if e.type == "model_call" and e.payload["ordinal"] == 1
    )
    assert types[-2:] == ["attempt_ended", "run_completed"]


@pytest.mark.slow
def test_ctrl_c_ends_the_attempt_interrupted_and_the_next_is_not_told_it_was_killed(
    tmp_path: Path,
) -> None:
    program = CrashProgram(tmp_path)
    try:
        proc = program.start("run_sync", "ctrl-c", block="tool_b:mid")
        assert program.wait_started(proc) == "tool_b:mid"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
        assert "KeyboardInterrupt" in err, err
        url = f"sqlite:///{program.db}"
        attempts = _attempts(_events(url, "ctrl-c"))
        assert [(t, p["attempt"]) for t, p in attempts] == [
            ("attempt_started", 1),
            ("attempt_ended", 1),
        ]
        ended = attempts[1][1]
        assert (ended["reason"], ended["pid"]) == ("interrupted", proc.pid)
        assert "detected_at" not in ended  # it said so itself

        assert final_output(program.run("run_sync", "ctrl-c")) == FINAL
        attempts = _attempts(_events(url, "ctrl-c"))
        assert [(t, p.get("reason")) for t, p in attempts] == [
            ("attempt_started", None),
            ("attempt_ended", "interrupted"),
            ("attempt_started", None),
            ("attempt_ended", "finished"),
        ]
        assert attempts[2][1]["model_calls"] == 2  # tool_a's and tool_b's requests
    finally:
        program.cleanup()


# -- in one process, on both databases ------------------------------------------------------------


class _Gate:
    def __init__(self) -> None:
        self.open = False
        self.started = asyncio.Event()


def _agent(gate: _Gate) -> Agent[Any]:
    @function_tool
    async def step() -> str:
        """Do the step."""
        gate.started.set()
        if not gate.open:
            await asyncio.Event().wait()
        return "STEP"

    def respond(call: ModelCall) -> list[Any]:
        items = call.input if isinstance(call.input, list) else []
        outputs = [i["output"] for i in items if i.get("type") == "function_call_output"]
        if not outputs:
            return [function_call("step", {}, call_id="s1")]
        return [assistant_message(f"done: {outputs[0]}")]

    return Agent(
        name="attempted",
        tools=[step],
        model=ScriptedModel([ModelStep.respond(respond) for _ in range(2)]),
    )


def test_a_cancelled_task_ends_the_attempt_interrupted_and_the_resume_says_so(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    rid = _unique("cancelled")

    async def go() -> None:
        backend = DurableBackend(LocalEngine(db_url))
        gate = _Gate()
        with run_id(rid):
            task = asyncio.ensure_future(backend.run(_agent(gate), "go"))
        await gate.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.open = True
        with caplog.at_level(logging.INFO, logger="runplane_durable"), run_id(rid):
            result = await backend.run(_agent(gate), "go")
        assert result.final_output == "done: STEP"
        await backend.engine.dispose()

    run_async(go())
    resumed = [r for r in caplog.records if r.getMessage().startswith(f"resumed run {rid}:")]
    assert len(resumed) == 1
    assert resumed[0].levelno == logging.WARNING  # seen without any logging set up
    assert "1 model call and 0 tool outputs from the journal (attempt 2" in resumed[0].getMessage()
    attempts = _attempts(_events(db_url, rid))
    assert [(t, p.get("reason")) for t, p in attempts] == [
        ("attempt_started", None),
        ("attempt_ended", "interrupted"),
        ("attempt_started", None),
        ("attempt_ended", "finished"),
    ]
    again = attempts[2][1]
    assert (again["attempt"], again["resumed"], again["model_calls"], again["tool_outputs"]) == (
        2,
        True,
        1,
        0,
    )


def test_a_lost_lease_is_written_by_the_taker_and_the_stalled_holder_adds_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _unique("stalled")
    engine = LocalEngine(db_url)
    spec = RunSpec(rid, "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        stale = await engine.open_run(spec, lease_seconds=0.2)
        beat = time.time()
        await stale.heartbeat()
        await asyncio.sleep(0.3)  # stalled past its lease, alive: another process takes over
        import runplane_durable.local.engine as local

        monkeypatch.setattr(local, "current_owner", lambda: "elsewhere:7:other")
        taker = await engine.open_run(spec, lease_seconds=30)
        monkeypatch.undo()
        with pytest.raises(RunLeasedError, match="taken over"):
            await stale.check_lease()
        await stale.close()  # writes nothing: the run is not its own any more
        await taker.finish("completed", final_output={"json": "x"})
        await taker.close()
        events = await engine.list_events(rid)
        await engine.dispose()
        attempts = _attempts(events)
        assert [(t, p["attempt"], p.get("reason")) for t, p in attempts] == [
            ("attempt_started", 1, None),
            ("attempt_ended", 1, "lease_lost"),
            ("attempt_started", 2, None),
            ("attempt_ended", 2, "finished"),
        ]
        lost = attempts[1][1]
        assert lost["owner"] == attempts[0][1]["owner"]
        # its last sign of life is its last heartbeat, not the moment it was found
        assert beat <= lost["ended_at"] < beat + 0.2 < lost["detected_at"]
        taken = attempts[2][1]
        assert (taken["owner"], taken["host"], taken["pid"]) == (
            "elsewhere:7:other",
            "elsewhere",
            7,
        )
        assert [e.type for e in events][-1] == "run_completed"

    run_async(go())


def test_a_failed_run_ends_its_attempt_failed_with_the_error_in_the_run_event(
    db_url: str,
) -> None:
    rid = _unique("failed")

    @function_tool(failure_error_function=None)  # the tool's error fails the run
    def step() -> str:
        """Do the step."""
        raise ConnectionError("upstream 503")

    model = ScriptedModel([[function_call("step", {}, call_id="s1")]])
    backend = DurableBackend(LocalEngine(db_url))
    with run_id(rid), pytest.raises(UserError, match="upstream 503"):
        backend.run_sync(Agent(name="failing", tools=[step], model=model), "go")
    events = _events(db_url, rid)
    run_async(backend.engine.dispose())
    assert [e.type for e in events][-2:] == ["attempt_ended", "run_failed"]
    assert events[-2].payload["reason"] == "failed"
    assert events[-1].payload == {
        "error_type": "agents.exceptions.UserError",
        "error": "Error running tool step: upstream 503",
    }


def test_a_run_awaiting_approval_ends_its_attempt_and_lists_the_waiting_calls(
    db_url: str,
) -> None:
    rid = _unique("approval")

    @function_tool(needs_approval=True)
    def pay(amount: int) -> str:
        """Pay."""
        return "paid"

    @function_tool
    def look(what: str) -> str:
        """Look."""
        return "seen"

    model = ScriptedModel(
        [
            [
                function_call("look", {"what": "bill"}, call_id="l1"),
                function_call("pay", {"amount": 5}, call_id="p1"),
            ]
        ]
    )
    backend = DurableBackend(LocalEngine(db_url))
    with run_id(rid):
        result = backend.run_sync(Agent(name="payer", tools=[pay, look], model=model), "go")
    assert [item.call_id for item in result.interruptions] == ["p1"]
    events = _events(db_url, rid)
    run_async(backend.engine.dispose())
    assert [e.type for e in events][-3:] == [
        "attempt_ended",
        "approval_requested",
        "run_awaiting_approval",
    ]
    assert events[-3].payload["reason"] == "awaiting_approval"
    # the key a tool call of the first model response gets (see the tool_call events)
    (looked,) = [e.payload for e in events if e.type == "tool_call"]
    assert looked["key"] == "1:l1"
    assert events[-1].payload["calls"] == [{"call_id": "p1", "name": "pay", "key": "1:p1"}]


def test_only_a_new_run_under_a_chosen_id_says_where_it_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    backend = DurableBackend(LocalEngine(url))
    inner = Agent(name="inner", model=ScriptedModel([[assistant_message("inner done")]]))
    outer = Agent(
        name="outer",
        tools=[inner.as_tool(tool_name="ask_inner", tool_description="Ask.")],
        model=ScriptedModel(
            [[function_call("ask_inner", {"input": "hi"}, call_id="c1")], [assistant_message("ok")]]
        ),
    )
    with caplog.at_level(logging.INFO, logger="runplane_durable"):
        with run_id("order-42"):
            backend.run_sync(outer, "go")
        backend.run_sync(Agent(name="plain", model=ScriptedModel([[assistant_message("x")]])), "y")
        with run_id("order-42"):  # finished: replayed, no attempt, nothing to warn about
            backend.run_sync(outer, "go")
    run_async(backend.engine.dispose())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    db = tmp_path / "runs.db"
    # the nested run (Agent.as_tool) has a derived id, the plain run a generated one: silent
    assert warnings == [f"started new run order-42 in the SQLite database {db}"]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("replaying finished run order-42: 2 model calls") for m in infos)
    events = _events(url, "order-42")
    assert [t for t, _ in _attempts(events)] == ["attempt_started", "attempt_ended"]


def _holder(owner: str | None, *, updated_at: float, lease_expires_at: float | None) -> RunRecord:
    return RunRecord(
        id="r",
        agent_name="a",
        status="running",
        input={},
        options={},
        created_at=0.0,
        updated_at=updated_at,
        finished_at=None,
        owner=owner,
        lease_expires_at=lease_expires_at,
        model_calls=0,
        tool_calls=0,
        requests=0,
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        final_output=None,
        error_type=None,
        error=None,
    )


def test_an_attempt_that_never_said_it_ended_is_ended_by_what_the_run_row_shows() -> None:
    started = parse(
        NewEvent("attempt_started", {"attempt": 3, "owner": "far:9:tok:1", "lease_seconds": 30.0})
    )
    # its holder still: lease expired, process not known dead (another host); last sign of
    # life is the later of its last step (updated_at) and its last heartbeat (expiry - lease)
    lost = unended(
        started,
        _holder("far:9:tok:1", updated_at=100.0, lease_expires_at=140.0),
        200.0,
    )
    assert lost is not None
    assert lost.payload == {
        "attempt": 3,
        "owner": "far:9:tok:1",
        "host": "far",
        "pid": 9,
        "reason": "lease_lost",
        "ended_at": 110.0,
        "detected_at": 200.0,
    }
    # given back without a word (a version before attempts were written): interrupted then
    quiet = unended(started, _holder(None, updated_at=120.0, lease_expires_at=None), 200.0)
    assert quiet is not None
    assert (quiet.payload["reason"], quiet.payload["ended_at"]) == ("interrupted", 120.0)
    # the run row names another holder: when this one stopped is not known
    other = unended(
        started,
        _holder("far:8:x:1", updated_at=1.0, lease_expires_at=2.0),
        200.0,
    )
    assert other is not None
    assert (other.payload["reason"], other.payload["ended_at"]) == ("lease_lost", None)
    # the last attempt ended, or there was none (a run from before attempts were written)
    assert (
        unended(
            parse(NewEvent("attempt_ended", {"attempt": 3, "owner": "far:9:tok:1"})),
            _holder(None, updated_at=1.0, lease_expires_at=None),
            2.0,
        )
        is None
    )
    assert unended(None, _holder(None, updated_at=1.0, lease_expires_at=None), 2.0) is None
    assert next_number(None) == 1
    assert next_number(started) == 4
