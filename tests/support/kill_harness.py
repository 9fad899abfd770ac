"""The random kill -9 harness: runs of `kill_program.py` killed at uniform moments, then checked.

One trial is one run id: a process is started and killed with SIGKILL at a moment drawn
uniformly over the length of a whole run, the next process resumes the same id and is killed the
same way, and a last one runs it to the end. After each kill the run's committed steps are read
back, so every real model call and tool side effect (logged by the program with its pid) can be
judged against what was already journaled when its process started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runplane_durable import LocalEngine, RunNotFoundError

from support.durable_programs import TIMEOUT, CrashProgram
from support.durable_server import Server

__all__ = ["FINAL", "KillProgram", "Tally", "calibrate", "trial"]

SOURCE = Path(__file__).with_name("kill_program.py")
FINAL = {"a": "value-a", "b": "value-b"}
MODEL_ORDINALS = [0, 1, 2]  # parallel tool calls, the handoff, the writer's structured output
TOOL_CALLS = ["call-a", "call-b"]


class KillProgram(CrashProgram):
    """`kill_program.py` in `workdir`, on the database `db_url`: directly, or through `server`
    (a running `runplane server` on that database)."""

    def __init__(self, workdir: Path, db_url: str, server: Server | None = None) -> None:
        super().__init__(workdir)
        shutil.copyfile(SOURCE, self.script)
        self.db_url = db_url
        self.server = server

    def _env(self, block: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = super()._env(block, extra)
        if self.server is None:
            env["RUNPLANE_DATABASE_URL"] = self.db_url
        return env

    def launch(self, mode: str, run_id: str) -> subprocess.Popen[str]:
        for marker in ("begin", "end"):
            (self.workdir / marker).unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, str(self.script), mode, run_id],
            cwd=self.workdir,
            env=self._env(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def wait_marker(self, proc: subprocess.Popen[str], name: str) -> None:
        """Wait for marker `begin` (imports done, the run starts) or `end` (the run returned)."""
        marker = self.workdir / name
        self._wait(proc, lambda: marker.exists() and marker.read_text("utf-8").endswith("\n"))

    def wait_exit(self, proc: subprocess.Popen[str]) -> tuple[str, str]:
        return proc.communicate(timeout=TIMEOUT)

    def read(self, run_id: str) -> dict[str, Any] | None:
        """The run and its event log, or None while the run was never opened.

        Read through the engine, not `runplane runs show`: the typer test runner swaps
        `sys.stdout`, which races with pytest's own capture when it runs in a worker thread.
        """

        async def read() -> dict[str, Any] | None:
            engine = LocalEngine(self.db_url)
            try:
                run = await engine.get_run(run_id)
                events = await engine.list_events(run_id)
            except RunNotFoundError:
                return None
            finally:
                await engine.dispose()
            steps = [{"type": e.type, "seq": e.seq, "payload": e.payload} for e in events]
            return {"run": dataclasses.asdict(run), "steps": steps}

        result: dict[str, Any] | None = asyncio.run(read())
        return result

    def pid_lines(self, name: str) -> list[tuple[str, int]]:
        """`(what, pid)` for each line of log `name`, in order."""
        return [(what, int(pid)) for what, pid in (line.split() for line in self.lines(name))]


@dataclass(frozen=True)
class Committed:
    """What the journal held at one moment: model ordinals, tool call ids, the run's status."""

    models: frozenset[int] = frozenset()
    tools: frozenset[str] = frozenset()
    status: str | None = None

    @classmethod
    def of(cls, show: dict[str, Any] | None) -> Committed:
        if show is None:
            return cls()
        steps = show["steps"]
        return cls(
            frozenset(s["payload"]["ordinal"] for s in steps if s["type"] == "model_call"),
            frozenset(s["payload"]["call_id"] for s in steps if s["type"] == "tool_call"),
            show["run"]["status"],
        )


@dataclass
class Process:
    pid: int
    killed: bool
    before: Committed
    after: Committed


@dataclass
class Tally:
    """Figures over many trials: how many, what the kills hit, and every failure found."""

    windows: list[float] = field(default_factory=list)  # seconds a whole run took, measured
    trials: int = 0
    kills: int = 0
    missed: int = 0  # the process had finished before its kill moment
    landed: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.trials += other.trials
        self.kills += other.kills
        self.missed += other.missed
        self.landed.update(other.landed)
        self.failures.extend(other.failures)


def calibrate(program: KillProgram, mode: str, run_id: str) -> float:
    """Seconds from the program's `begin` to its `end`: a whole run, that nobody kills."""
    proc = program.launch(mode, run_id)
    program.wait_marker(proc, "begin")
    begun = time.monotonic()
    program.wait_marker(proc, "end")
    took = time.monotonic() - begun
    out, err = program.wait_exit(proc)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["final_output"] == FINAL
    return took


def _where(process: Process, models: list[int], effects: list[str]) -> str:
    """What the kill interrupted, as a label for the figures."""
    after = process.after
    if after.status is None:
        return "before the run was opened"
    if after.status == "completed":
        return "after the run's outcome was committed"
    state = f"{len(after.models)} model call(s), {len(after.tools)} tool(s) committed"
    if set(models) - after.models:
        return f"{state}; a model call in flight"
    if set(effects) - after.tools:
        return f"{state}; a tool's side effect done, its output not committed"
    return state


def trial(program: KillProgram, mode: str, run_id: str, window: float, rng: random.Random) -> Tally:
    """Two processes killed at moments uniform over `window` s, a third to the end; judged."""
    tally = Tally(trials=1)
    processes: list[Process] = []
    before = Committed.of(program.read(run_id))
    final_out: str | None = None
    for attempt in range(3):
        proc = program.launch(mode, run_id)
        killed = False
        if attempt < 2:
            program.wait_marker(proc, "begin")
            time.sleep(rng.random() * window)
            os.kill(proc.pid, signal.SIGKILL)  # a finished child is a zombie until reaped: no error
            out, err = program.wait_exit(proc)
            killed = proc.returncode == -signal.SIGKILL
            tally.kills += killed
            tally.missed += not killed
        else:
            out, err = program.wait_exit(proc)
        if not killed and proc.returncode != 0:
            tally.failures.append(f"{run_id}: process {attempt + 1} failed:\n{err}")
            return tally
        after = Committed.of(program.read(run_id))
        processes.append(Process(proc.pid, killed, before, after))
        before = after
        if not killed:
            final_out = out
            break
    tally.failures.extend(f"{run_id}: {f}" for f in _judge(program, run_id, processes, final_out))
    models, effects = program.pid_lines("model.log"), program.pid_lines("effects.log")
    for p in processes:
        if p.killed:
            mine = [int(o) for o, pid in models if pid == p.pid]
            done = [c for c, pid in effects if pid == p.pid]
            tally.landed[_where(p, mine, done)] += 1
    return tally


def _judge(
    program: KillProgram, run_id: str, processes: list[Process], final_out: str | None
) -> list[str]:
    failures: list[str] = []
    if final_out is None:
        return ["no process finished the run"]
    output = json.loads(final_out.strip().splitlines()[-1])["final_output"]
    if output != FINAL:
        failures.append(f"final output {output!r}, expected {FINAL!r}")

    models, effects = program.pid_lines("model.log"), program.pid_lines("effects.log")
    for n, p in enumerate(processes, 1):
        asked = [int(o) for o, pid in models if pid == p.pid]
        done = [c for c, pid in effects if pid == p.pid]
        role = "killed" if p.killed else "last"
        if len(asked) != len(set(asked)) or len(done) != len(set(done)):
            failures.append(f"process {n} ({role}) repeated a step itself: {asked} {done}")
        if again := set(asked) & p.before.models:
            failures.append(f"process {n} ({role}) asked committed model call(s) {sorted(again)}")
        if again := set(done) & p.before.tools:
            failures.append(f"process {n} ({role}) re-ran committed tool(s) {sorted(again)}")
        lost_models, lost_tools = set(asked) - p.after.models, set(done) - p.after.tools
        if p.killed and len(lost_models) > 1:  # model calls are sequential: one in flight at most
            failures.append(f"process {n} lost {sorted(lost_models)}: more than the one in flight")
        if not p.killed and (lost_models or lost_tools):
            failures.append(f"the last process did not commit {lost_models or lost_tools}")
        if p.killed and p.after.status not in (None, "running", "completed"):
            failures.append(f"after kill {n} the run is {p.after.status!r}, not resumable")

    show = program.read(run_id)
    if show is None:
        return [*failures, "the finished run is not in the database"]
    run, steps = show["run"], show["steps"]
    if (run["status"], run["owner"]) != ("completed", None) or not _holds(run["final_output"]):
        failures.append(f"run ended {run['status']!r}, owner {run['owner']!r}: {run}")
    ordinals = [s["payload"]["ordinal"] for s in steps if s["type"] == "model_call"]
    calls = [s["payload"]["call_id"] for s in steps if s["type"] == "tool_call"]
    seqs = [s["seq"] for s in steps]
    ends = [s["type"] for s in steps if s["type"].startswith("run_")]
    if ordinals != MODEL_ORDINALS or sorted(calls) != TOOL_CALLS:
        failures.append(f"event log steps: model calls {ordinals}, tools {calls}")
    if seqs != sorted(set(seqs)) or ends != ["run_completed"] or steps[-1]["type"] != ends[-1]:
        failures.append(f"event log out of order or with extra ends: {seqs} {ends}")
    return failures


def _holds(stored: Any) -> bool:
    """Whether the stored form of the final output (a tagged display form) carries FINAL."""
    if stored == FINAL:
        return True
    return isinstance(stored, dict) and any(_holds(value) for value in stored.values())
