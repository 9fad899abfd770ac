"""Crash semantics with real processes and a real kill -9, for run, run_sync and run_streamed.

A run is killed at each kind of step boundary, then resumed by a fresh process: recorded model
calls and completed tools must not run again, the tool in flight at the crash must run again,
and the run must finish with the right output and an event log without duplicated steps. Also:
a live run's lease refuses a second process and passes at once to a successor when its holder
dies, and a finished run replays its stored result without calling anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.durable_programs import TIMEOUT, CrashProgram, final_output

pytestmark = pytest.mark.slow

MODES = ["run", "run_sync", "run_streamed"]
FINAL = "done: TOOL_A-0, TOOL_B-1, TOOL_C-2"
A, B, C = "tool_a call-a", "tool_b call-b", "tool_c call-c"


@dataclass(frozen=True)
class Crash:
    """Where one process is killed, and what must have really happened by then (all processes)."""

    block: str
    in_flight: str  # call id of the tool the process is killed in
    model_calls: list[int]
    tool_calls: list[str]


# Each crash hits a process that resumed the previous one, so every kill after the first also
# proves that a resumed run's progress is itself durable.
CRASHES = [
    # In the middle of the first tool: its side effect happened, its output was never journaled.
    Crash("tool_a:mid", "call-a", [0], [A]),
    # Right after model call #2 was journaled, before its tool did anything. The resume replays
    # model call #1, re-runs tool_a (in flight at the first crash), and calls the model once.
    Crash("tool_b:start", "call-b", [0, 1], [A, A]),
    # In the middle of a later tool, after earlier tools (tool_b just now) completed.
    Crash("tool_c:mid", "call-c", [0, 1, 2], [A, A, B, C]),
]


# "server": the program reaches a `runplane server` on its database through RUNPLANE_SERVER_URL.
TRANSPORTS = ["embedded", "server"]


@pytest.fixture(params=TRANSPORTS)
def program(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[CrashProgram]:
    prog = CrashProgram(tmp_path, served=request.param == "server")
    try:
        yield prog
    finally:
        prog.cleanup()  # never leave a hanging program behind, pass or fail


def _steps(show: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s["payload"] for s in show["steps"] if s["type"] == kind]


def _assert_no_duplicate_steps(show: dict[str, Any], model_calls: int) -> None:
    """One model_call event per ordinal and one tool_call event per tool call, ever."""
    ordinals = [p["ordinal"] for p in _steps(show, "model_call")]
    assert ordinals == list(range(model_calls))
    keys = [p["key"] for p in _steps(show, "tool_call")]
    assert len(keys) == len(set(keys))
    seqs = [s["seq"] for s in show["steps"]]
    assert seqs == sorted(set(seqs))


@pytest.fixture(scope="module")
def crash_chains(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, str], Future[None]]]:
    """Every mode's crash chain, embedded and in server mode, all started at once.

    A chain is five processes in a row that spend most of their time importing the SDK; run
    side by side, they keep this file within its time budget on two cores. Each test then
    reports its own mode's outcome.
    """
    chains = [(transport, mode) for transport in TRANSPORTS for mode in MODES]
    programs = {
        (transport, mode): CrashProgram(
            tmp_path_factory.mktemp(f"{transport}-{mode}"), served=transport == "server"
        )
        for transport, mode in chains
    }
    pool = ThreadPoolExecutor(max_workers=len(MODES))
    try:
        yield {chain: pool.submit(_crash_chain, programs[chain], chain[1]) for chain in chains}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # bounded: every wait has a timeout
        for program in programs.values():
            program.cleanup()


def _crash_chain(program: CrashProgram, mode: str) -> None:
    """Kill -9 at each boundary in CRASHES, resume to the end, then rerun the finished run."""
    for crash in CRASHES:
        streamed_before = len(program.lines("stream.log"))
        proc = program.start(mode, "crash-1", block=crash.block)
        assert program.wait_started(proc) == crash.block
        if mode == "run_streamed":  # events are consumed live, up to the tool in flight
            called = f"item tool_called {crash.in_flight}"
            program.wait_line(proc, "stream.log", called, after=streamed_before)
        program.kill9(proc)

        assert program.model_calls() == crash.model_calls  # no model call asked twice
        assert program.tool_calls() == crash.tool_calls  # no completed tool run twice
        show = program.show("crash-1")
        assert show["run"]["status"] == "running"  # interrupted, resumable
        _assert_no_duplicate_steps(show, len(crash.model_calls))
        done = [p["call_id"] for p in _steps(show, "tool_call")]
        assert crash.in_flight not in done

    assert final_output(program.run(mode, "crash-1")) == FINAL
    assert program.model_calls() == [0, 1, 2, 3]  # each model call made once over 4 processes
    # Each tool killed midway ran twice (its side effect is at-least-once); tool_b was killed
    # before its side effect, so it shows once; no completed tool ever ran again.
    assert program.tool_calls() == [A, A, B, C, C]

    show = program.show("crash-1")
    run = show["run"]
    assert run["status"] == "completed"
    assert run["final_output"] == FINAL
    assert run["owner"] is None
    assert (run["model_calls"], run["tool_calls"]) == (4, 3)
    _assert_no_duplicate_steps(show, 4)
    assert [p["call_id"] for p in _steps(show, "tool_call")] == ["call-a", "call-b", "call-c"]
    assert [s["type"] for s in show["steps"]].count("run_completed") == 1
    assert show["steps"][-1]["type"] == "run_completed"

    # Finished: a fresh process gets the stored result by pure replay, calling nothing.
    logs = {name: program.lines(name) for name in ("model.log", "calls.log")}
    assert final_output(program.run(mode, "crash-1")) == FINAL
    assert {name: program.lines(name) for name in logs} == logs
    assert program.show("crash-1") == show  # not a single new event


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kill_9_at_each_step_boundary_then_resume(
    crash_chains: dict[tuple[str, str], Future[None]], transport: str, mode: str
) -> None:
    # re-raises the chain's failure, if any
    crash_chains[transport, mode].result(timeout=20 * TIMEOUT)


def test_live_lease_refuses_a_second_process_and_passes_at_once_to_a_successor(
    program: CrashProgram,
) -> None:
    holder = program.start("run", "lease-1", block="tool_b:mid")
    assert program.wait_started(holder) == "tool_b:mid"
    live = program.show("lease-1")["run"]
    assert live["status"] == "running"
    owner = live["owner"]
    assert f":{holder.pid}:" in owner
    logs = (program.model_calls(), program.tool_calls())
    assert logs == ([0, 1], [A, B])

    with ThreadPoolExecutor(len(MODES)) as pool:  # one intruder per entry point, side by side
        intruders = list(pool.map(lambda mode: program.run(mode, "lease-1"), MODES))
    for intruder in intruders:
        assert intruder.returncode != 0
        last_line = intruder.stderr.strip().splitlines()[-1]
        assert last_line.startswith("runplane_durable.errors.RunLeasedError: run 'lease-1'")
        assert f":{holder.pid}:" in last_line
        assert "one run never executes twice at once" in last_line
    assert (program.model_calls(), program.tool_calls()) == logs  # they ran nothing
    live = program.show("lease-1")["run"]  # its lease as last extended before the kill
    assert live["owner"] == owner

    program.kill9(holder)
    killed_at = time.time()
    assert final_output(program.run("run", "lease-1")) == FINAL
    assert program.model_calls() == [0, 1, 2, 3]
    assert program.tool_calls() == [A, B, B, C]

    show = program.show("lease-1")
    assert show["run"]["status"] == "completed"
    _assert_no_duplicate_steps(show, 4)
    # Taken over at once (the holder's pid is dead on this host), not after its lease expired:
    # the successor finished tool_b while the dead holder's lease was still valid.
    (finished_b,) = [
        s for s in show["steps"] if s["type"] == "tool_call" and s["payload"]["call_id"] == "call-b"
    ]
    assert killed_at <= finished_b["created_at"] < live["lease_expires_at"]
