"""Cancel from any process: a run executing in one real process, cancelled from another.

The program (`support/cancel_program.py`) runs in a subprocess, on SQLite and PostgreSQL, through
`run`, `run_sync` and `run_streamed`, with its tool or its model blocking; the test process
cancels it with `runplane runs cancel` (itself a real process) or the engine, immediately or
after the current turn, and checks what the program's caller got, what was recorded, and that
nothing was half-recorded. Runs no process executes (killed with SIGKILL, stopped with SIGINT,
awaiting approval) are recorded cancelled at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import (
    DurableBackend,
    LocalEngine,
    RunCancelledError,
    Runner,
    run_id,
)
from runplane_durable.engine import open_engine
from runplane_durable.errors import RunFinishedError
from runplane_durable.runtime.cancel import ENV_CANCEL_POLL_SECONDS, cancel_poll_seconds
from runplane_durable.server.responses import status_for
from support.durable import run_async
from support.durable_server import running_server

PROGRAM = Path(__file__).resolve().parents[2] / "support" / "cancel_program.py"
PROMPT = "Do the work twice, then say done."  # the program's input: the same run id, again
TIMEOUT = 60.0  # for any one process or wait: bounded even when something hangs
HANG = 120.0  # a tool that waits this long is cancelled long before
# A cancel is carried out within about RUNPLANE_CANCEL_POLL_SECONDS (1 s) of being asked; the
# process then records the outcome and exits. Generous for a loaded 2-core machine.
STOPS_WITHIN = 15.0


class Program:
    """The cancel program, run in `workdir` on database `db`, and every process it started."""

    def __init__(self, workdir: Path, db: str) -> None:
        self.workdir = workdir
        self.db = db
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, mode: str, rid: str, block: str) -> subprocess.Popen[str]:
        (self.workdir / "started").unlink(missing_ok=True)
        env = {**os.environ, "CANCEL_DB": self.db, "CANCEL_BLOCK": block, "PYTHONUNBUFFERED": "1"}
        env.pop(ENV_CANCEL_POLL_SECONDS, None)  # the default: once a second
        proc = subprocess.Popen(
            [sys.executable, str(PROGRAM), mode, rid],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def wait_started(self, proc: subprocess.Popen[str], what: str) -> None:
        marker = self.workdir / "started"
        deadline = time.monotonic() + TIMEOUT
        while not (marker.exists() and marker.read_text().endswith("\n")):
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"the program exited ({proc.returncode}):\n{out}\n{err}")
            assert time.monotonic() < deadline, "the program never got to its blocking step"
            time.sleep(0.02)
        assert marker.read_text().split() == [what, str(proc.pid)]

    def outcome(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = proc.communicate(timeout=STOPS_WITHIN)
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return data

    def lines(self, name: str) -> list[str]:
        path = self.workdir / name
        return path.read_text().splitlines() if path.exists() else []

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def program(tmp_path: Path, db_url: str) -> Iterator[Program]:
    made = Program(tmp_path, db_url)
    yield made
    made.cleanup()


def _rid() -> str:
    return f"cancel-{uuid.uuid4().hex[:10]}"


def cli_cancel(db: str, rid: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`runplane runs cancel` as a real process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "runplane", "runs", "cancel", rid, "--db", db, *extra],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def engine_call(db: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """`engine.method(...)` on an engine of its own: `db` a database, or a server's URL."""

    async def go() -> Any:
        engine = open_engine(db)
        try:
            return await getattr(engine, method)(*args, **kwargs)
        finally:
            await engine.dispose()

    return run_async(go())


def show(db: str, rid: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "runplane", "runs", "show", rid, "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def wait_status(db: str, rid: str, status: str) -> float:
    """Seconds until run `rid` has `status` (bounded)."""
    started = time.monotonic()
    while engine_call(db, "get_run", rid).status != status:
        assert time.monotonic() - started < STOPS_WITHIN, f"run {rid} never became {status}"
        time.sleep(0.02)
    return time.monotonic() - started


def cancel(db: str, rid: str, via: str, mode: str) -> tuple[Any, str]:
    """Ask from another process (`via` "cli": runplane runs cancel; "engine": this process);
    the record as stored right after, and who asked (as the event and the error name it)."""
    if via == "cli":
        extra = ("--json", "--after-turn") if mode == "after_turn" else ("--json",)
        proc = cli_cancel(db, rid, *extra)
        assert proc.returncode == 0, proc.stderr
        record = engine_call(db, "get_run", rid)
        assert json.loads(proc.stdout)["cancel_requested"] in (mode, None)
        return record, "pid "
    return engine_call(db, "cancel_run", rid, mode=mode), f"pid {os.getpid()} "


def _event_types(db: str, rid: str) -> list[str]:
    return [e.type for e in engine_call(db, "list_events", rid)]


def _again_is_refused(db: str, rid: str) -> None:
    """A cancelled run is final: its id run again raises RunCancelledError, in any process."""
    backend = DurableBackend(LocalEngine(db))
    agent = Agent(name="worker", model=ScriptedModel([]))
    with run_id(rid), pytest.raises(RunCancelledError, match="was cancelled"):
        backend.run_sync(agent, PROMPT)
    run_async(backend.engine.dispose())


def _stopped_caller(outcome: dict[str, Any], mode: str, asker: str, how: str) -> None:
    """What the program's caller got: RunCancelledError saying who, or its stream just ended."""
    if mode == "run_streamed":
        assert outcome == {
            "outcome": "stream_ended",
            "final_output": None,
            "is_complete": True,
            "events": outcome["events"],
        }
        return
    assert (outcome["outcome"], outcome["type"]) == ("error", "RunCancelledError")
    assert "was cancelled from another process" in outcome["message"]
    assert asker in outcome["fields"]["by"]
    assert outcome["fields"]["mode"] == how


MODES = ["run", "run_sync", "run_streamed"]


@pytest.mark.parametrize("via", ["cli", "engine"])
@pytest.mark.parametrize("mode", MODES)
def test_a_tool_in_flight_is_cancelled_immediately_and_never_recorded_completed(
    program: Program, mode: str, via: str
) -> None:
    rid = _rid()
    proc = program.start(mode, rid, block="tool")
    program.wait_started(proc, "tool")
    asked, asker = cancel(program.db, rid, via, "immediate")
    # The holder keeps the run until it sees the request and stops it.
    assert (asked.status, asked.cancel_requested) in {
        ("running", "immediate"),
        ("cancelled", None),
    }
    took = wait_status(program.db, rid, "cancelled")
    print(f"\n{mode} via {via} on {program.db.split(':')[0]}: cancelled {took:.3f} s after asked")
    _stopped_caller(program.outcome(proc), mode, asker, "immediate")
    record = engine_call(program.db, "get_run", rid)
    assert (record.status, record.cancel_requested, record.owner) == ("cancelled", None, None)
    assert record.tool_calls == 0
    assert program.lines("calls.log") == ["start 0"]  # the tool was stopped midway
    types = _event_types(program.db, rid)
    assert "tool_call" not in types  # never recorded as completed
    assert types[-4:] == ["model_call", "cancel_requested", "attempt_ended", "run_cancelled"]
    shown = show(program.db, rid)
    assert [c["call_id"] for c in shown["cut_off"]] == ["call-0"]
    assert shown["in_flight"] == []
    _again_is_refused(program.db, rid)


@pytest.mark.parametrize("mode", ["run", "run_streamed"])
def test_a_model_call_in_flight_is_cancelled_immediately(program: Program, mode: str) -> None:
    rid = _rid()
    proc = program.start(mode, rid, block="model")
    program.wait_started(proc, "model")
    cancel(program.db, rid, "engine", "immediate")
    _stopped_caller(program.outcome(proc), mode, f"pid {os.getpid()} ", "immediate")
    record = engine_call(program.db, "get_run", rid)
    assert (record.status, record.model_calls, record.tool_calls) == ("cancelled", 1, 1)
    assert len(program.lines("model.log")) == 2  # the second call was asked, never answered
    assert _event_types(program.db, rid).count("model_call") == 1


@pytest.mark.parametrize("via", ["cli", "engine"])
@pytest.mark.parametrize("mode", MODES)
def test_after_turn_lets_the_turn_finish_and_stops_before_the_next_model_call(
    program: Program, mode: str, via: str
) -> None:
    rid = _rid()
    proc = program.start(mode, rid, block="slow_tool")
    program.wait_started(proc, "slow_tool")  # turn 1's tool: it goes on when told
    asked, asker = cancel(program.db, rid, via, "after_turn")
    (program.workdir / "proceed").write_text("", encoding="utf-8")  # the turn may end now
    assert (asked.status, asked.cancel_requested) == ("running", "after_turn")
    _stopped_caller(program.outcome(proc), mode, asker, "after_turn")
    record = engine_call(program.db, "get_run", rid)
    assert (record.status, record.model_calls, record.tool_calls) == ("cancelled", 1, 1)
    # The turn ended whole (its tool completed and was recorded); the next one never began.
    assert program.lines("calls.log") == ["start 0", "done 0"]
    assert len(program.lines("model.log")) == 1
    types = _event_types(program.db, rid)
    assert types.count("tool_call") == 1
    assert types[-2:] == ["attempt_ended", "run_cancelled"]
    assert show(program.db, rid)["cut_off"] == []  # nothing was cut off


@pytest.mark.parametrize("stop", ["kill -9", "ctrl-c"])
def test_a_run_no_process_executes_is_cancelled_at_once(program: Program, stop: str) -> None:
    rid = _rid()
    proc = program.start("run", rid, block="tool")
    program.wait_started(proc, "tool")
    if stop == "kill -9":
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == -signal.SIGKILL
        state = "orphaned"
    else:
        os.kill(proc.pid, signal.SIGINT)  # the run gives its lease back: stopped
        proc.communicate(timeout=TIMEOUT)
        state = "stopped"
    assert show(program.db, rid)["run"]["state"] == state
    done = cli_cancel(program.db, rid)
    assert done.returncode == 0, done.stderr
    assert f"run {rid} is cancelled" in done.stdout
    record = engine_call(program.db, "get_run", rid)  # at once: no process had to see it
    assert (record.status, record.owner, record.cancel_requested) == ("cancelled", None, None)
    events = engine_call(program.db, "list_events", rid)
    asked = next(e for e in events if e.type == "cancel_requested")
    assert asked.payload["holder"] is None  # no process was asked: it was done here
    assert asked.payload["mode"] == "immediate"
    assert asked.payload["pid"] not in (proc.pid, os.getpid())  # the CLI's own process
    ended = [e.payload["reason"] for e in events if e.type == "attempt_ended"]
    assert ended == (["killed"] if stop == "kill -9" else ["interrupted"])
    assert events[-1].type == "run_cancelled"
    _again_is_refused(program.db, rid)


def test_a_run_awaiting_approval_is_cancelled_at_once(db_url: str) -> None:
    @function_tool(needs_approval=True)
    def refund(amount: int) -> str:
        """Refund an amount."""
        return f"refunded {amount}"

    agent = Agent(
        name="approver",
        model=ScriptedModel([[function_call("refund", {"amount": 5}, call_id="c1")]]),
        tools=[refund],
    )
    backend = DurableBackend(LocalEngine(db_url))
    rid = _rid()
    with run_id(rid):
        result = backend.run_sync(agent, "refund 5")
    assert result.interruptions
    assert engine_call(db_url, "get_run", rid).status == "awaiting_approval"
    cancelled = run_async(backend.cancel(rid))
    assert (cancelled.status, cancelled.cancel_requested) == ("cancelled", None)
    assert run_async(backend.cancel(rid, mode="after_turn")) == cancelled  # idempotent
    assert _event_types(db_url, rid)[-2:] == ["cancel_requested", "run_cancelled"]
    run_async(backend.engine.dispose())


def test_a_finished_run_cannot_be_cancelled(db_url: str) -> None:
    agent = Agent(name="quick", model=ScriptedModel([[assistant_message("hello")]]))
    backend = DurableBackend(LocalEngine(db_url))
    rid = _rid()
    with run_id(rid):
        assert backend.run_sync(agent, "hi").final_output == "hello"
    with pytest.raises(RunFinishedError) as info:
        run_async(backend.cancel(rid))
    assert info.value.fields == {"run_id": rid, "status": "completed"}
    assert status_for(info.value) == 409  # the API answers 409 Conflict
    done = cli_cancel(db_url, rid)
    assert done.returncode == 2
    assert f"run {rid!r} already finished (completed); there is nothing to cancel" in (
        " ".join(done.stderr.split())
    )
    assert "Traceback" not in done.stderr
    assert engine_call(db_url, "get_run", rid).status == "completed"
    run_async(backend.engine.dispose())


def test_runner_cancel_stops_a_run_of_another_process(tmp_path: Path) -> None:
    """`Runner.cancel` (the registry's durable backend, on the default database)."""
    db = os.environ["RUNPLANE_DATABASE_URL"]
    program = Program(tmp_path, db)
    try:
        rid = _rid()
        proc = program.start("run_sync", rid, block="tool")
        program.wait_started(proc, "tool")
        record = asyncio.run(Runner.cancel(rid))
        assert (record.id, record.cancel_requested) == (rid, "immediate")
        _stopped_caller(program.outcome(proc), "run_sync", f"pid {os.getpid()} ", "immediate")
        assert asyncio.run(Runner.get_run(rid)).status == "cancelled"
        assert asyncio.run(Runner.cancel(rid)).status == "cancelled"
    finally:
        program.cleanup()


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "inf", "nan", "1s"])
def test_a_bad_poll_setting_is_refused_with_what_it_takes(
    raw: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_CANCEL_POLL_SECONDS, raw)
    with pytest.raises(ValueError, match=f"{ENV_CANCEL_POLL_SECONDS}=.* is not a positive number"):
        DurableBackend(LocalEngine(str(tmp_path / "runs.db")))


def test_the_poll_setting_and_its_keyword(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CANCEL_POLL_SECONDS, raising=False)
    assert cancel_poll_seconds() == 1.0
    monkeypatch.setenv(ENV_CANCEL_POLL_SECONDS, " 0.25 ")
    assert cancel_poll_seconds() == 0.25
    assert cancel_poll_seconds(2) == 2.0  # the keyword wins
    for bad in (0, -1.0, True):
        with pytest.raises(ValueError, match="cancel_poll_seconds must be a positive number"):
            cancel_poll_seconds(bad)


def test_a_resumed_run_is_cancelled_too_and_its_caller_told_who(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`Runner.resume` stops as `run` does; the asking process may be the executing one."""
    monkeypatch.setattr(Runner.durable(), "cancel_poll_seconds", 0.05)
    started = asyncio.Event()

    @function_tool
    async def wait_forever() -> str:
        """Wait."""
        started.set()
        await asyncio.sleep(HANG)
        return "never"

    agent = Agent(
        name="resumable",
        model=ScriptedModel([[function_call("wait_forever", {}, call_id="w1")]] * 2),
        tools=[wait_forever],
    )
    rid = _rid()

    async def go() -> float:
        with run_id(rid):
            first = asyncio.ensure_future(Runner.run(agent, "wait"))
        await asyncio.wait_for(started.wait(), TIMEOUT)
        first.cancel()  # the caller stops: the run is stopped, resumable
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (await Runner.get_run(rid)).owner is None
        started.clear()
        resumed = asyncio.ensure_future(Runner.resume(rid, agent))
        await asyncio.wait_for(started.wait(), TIMEOUT)
        asked = time.monotonic()
        record = await Runner.cancel(rid)
        assert (record.status, record.cancel_requested) == ("running", "immediate")
        with pytest.raises(RunCancelledError) as info:
            await asyncio.wait_for(resumed, TIMEOUT)
        took = time.monotonic() - asked
        assert info.value.fields["by"].endswith(
            f"pid {os.getpid()} user {info.value.by.split()[-1]}"
        )
        assert info.value.fields["mode"] == "immediate"
        assert (await Runner.get_run(rid)).status == "cancelled"
        return took

    took = asyncio.run(go())
    assert took < 2.0  # polled every 0.05 s


def test_a_run_in_server_mode_is_cancelled_from_another_process(
    tmp_path: Path, db_url: str
) -> None:
    """The program keeps its run behind a `runplane server`; `runplane runs cancel --server`,
    a process of its own, asks the server; the program learns it through the server (its
    writes' answers, its polls) and stops as embedded."""
    with running_server(db_url, tmp_path / "server.log") as server:
        program = Program(tmp_path, server.url)
        try:
            rid = _rid()
            proc = program.start("run", rid, block="tool")
            program.wait_started(proc, "tool")
            asked = subprocess.run(
                [sys.executable, "-m", "runplane", "runs", "cancel", rid, "--server", server.url],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
            assert asked.returncode == 0, asked.stderr
            assert f"asked run {rid} to stop at once" in asked.stdout, asked.stdout
            took = wait_status(server.url, rid, "cancelled")
            print(f"\nserver mode: cancelled {took:.3f} s after asked")
            _stopped_caller(program.outcome(proc), "run", "pid ", "immediate")
            record = engine_call(server.url, "get_run", rid)
            assert (record.status, record.cancel_requested, record.owner) == (
                "cancelled",
                None,
                None,
            )
            assert program.lines("calls.log") == ["start 0"]  # the tool was stopped midway
        finally:
            program.cleanup()
    log = (tmp_path / "server.log").read_text()
    assert f'"POST /api/v1/runs/{rid}/cancel HTTP' in log  # asked through the server
    assert '"POST /api/v1/sessions HTTP' in log  # and the program's run was opened there
