"""Runs for fault tests: a program running `runs` runs at once, each `turns` turns of one tool
call, in a subprocess (pointed at a database or a server by its environment), and the checks
that each run completed in one attempt with its journal and events each step exactly once.

The fault tests crash what the runs depend on (PostgreSQL, the server) while they go on, and
watch the journal grow (`journal_counts`) to see when they are under way and when they go on.
While a file `hold` exists in the program's directory, each run's last tool call waits: a test
that makes it first knows no run can finish before its fault.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runplane_durable import LocalEngine

from support.durable import run_async

__all__ = ["DEADLINE", "PROGRAM", "check_runs", "finish", "journal_counts", "start", "wait_for"]

DEADLINE = 240.0  # seconds any wait of these tests may take before it counts as a hang

PROGRAM = """
import asyncio, os, sys
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import Runner, run_id

runs, turns, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
calls = open(f"calls-{prefix}.log", "a", buffering=1)

def agent(i):
    @function_tool
    async def step(n: int) -> str:
        calls.write(f"{i} {n}\\n")
        await asyncio.sleep(0.02)
        while n == turns - 1 and os.path.exists("hold"):  # the test says when runs may end
            await asyncio.sleep(0.05)
        return f"{i}-{n}"

    script = [[function_call("step", {"n": n}, call_id=f"c{n}")] for n in range(turns)]
    script.append([assistant_message(f"done {i}")])
    return Agent(name="steady", tools=[step], model=ScriptedModel(script))

async def one(i):
    with run_id(f"{prefix}-{i}"):
        return (await Runner.run(agent(i), "go", max_turns=turns + 5)).final_output

async def main():
    results = await asyncio.gather(*(one(i) for i in range(runs)), return_exceptions=True)
    for r in results:
        print(r if isinstance(r, str) else f"FAILED {type(r).__name__}: {r}")

asyncio.run(main())
"""


def start(
    directory: Path, env: dict[str, str], *, runs: int, turns: int, prefix: str
) -> subprocess.Popen[str]:
    """The program, its runs named `{prefix}-{i}`, in `directory`."""
    program = directory / "steady_program.py"
    if not program.exists():
        program.write_text(PROGRAM)
    return subprocess.Popen(
        [sys.executable, str(program), str(runs), str(turns), prefix],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(
    proc: subprocess.Popen[str], directory: Path, *, runs: int, turns: int, prefix: str
) -> str:
    """Wait for the program; every run answered, every tool call made exactly once (nothing
    died but what the test crashed, so nothing runs again). Its stderr."""
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.split("\n")[:-1] == [f"done {i}" for i in range(runs)], (out, err[-3000:])
    calls = (directory / f"calls-{prefix}.log").read_text().split("\n")[:-1]
    assert sorted(calls) == sorted(f"{i} {n}" for i in range(runs) for n in range(turns))
    return err


def journal_counts(url: str) -> dict[str, int]:
    """Journal entries by run, read from the database itself ({} before it has the schema)."""

    def count(conn: Any) -> dict[str, int]:
        rows = conn.exec_driver_sql(
            "SELECT run_id, count(*) FROM runplane_journal GROUP BY run_id"
        ).all()
        return {str(r[0]): int(r[1]) for r in rows}

    async def read() -> dict[str, int]:
        engine = LocalEngine(url, retry_seconds=0)
        try:
            return await engine.database.call(count)
        finally:
            await engine.dispose()

    return dict(run_async(read()))


def wait_for(
    what: str, done: Any, procs: list[subprocess.Popen[str]], seconds: float = DEADLINE
) -> None:
    """Until `done()` is true; fails naming `what` past `seconds`, or if a program exited."""
    deadline = time.monotonic() + seconds
    while not done():
        for proc in procs:
            assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(0.02)


def check_runs(url: str, prefix: str, *, runs: int, turns: int) -> None:
    """Each run completed in one attempt; its journal and its events hold each step exactly
    once, numbered without a gap (an acknowledged step lost would leave one)."""

    async def read() -> list[tuple[Any, ...]]:
        engine = LocalEngine(url)
        try:
            found = []
            for i in range(runs):
                rid = f"{prefix}-{i}"
                found.append(
                    (
                        await engine.get_run(rid),
                        await engine.read_journal(rid),
                        await engine.list_events(rid),
                    )
                )
            return found
        finally:
            await engine.dispose()

    expected = []
    for n in range(turns):
        expected += [("model", str(n)), ("tool", f"{n + 1}:c{n}")]
    expected.append(("model", str(turns)))
    types = ["attempt_started", *["model_call", "tool_call"] * turns, "model_call"]
    types += ["attempt_ended", "run_completed"]
    for run, journal, events in run_async(read()):
        assert (run.status, run.owner) == ("completed", None), run
        assert (run.model_calls, run.tool_calls) == (turns + 1, turns), run
        assert [(r.kind, r.key) for r in journal] == expected, run.id
        assert [r.seq for r in journal] == list(range(1, len(expected) + 1)), run.id
        assert [e.type for e in events] == types, run.id
        assert [e.seq for e in events] == list(range(1, len(types) + 1)), run.id
