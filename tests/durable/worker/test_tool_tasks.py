"""Remote tools on real worker processes: a real ToolContext, a worker killed with SIGKILL or
paused with SIGSTOP mid-task, attempts exhausted, and the run's own process killed while it
waits. On SQLite and PostgreSQL (`store_url`); every process is bounded in time and stopped.

The programs are `support/remote_programs.py`: every tool execution appends to a ledger file, so
a test counts executions (at least once) apart from results recorded (once).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runplane_durable.engine import open_engine
from runplane_durable.events import ToolCalled, parse
from runplane_durable.records import JournalRecord, TaskRecord
from runplane_durable.serde import load_value
from support.remote_programs import CONTEXT, QUEUE, CallReport

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[2]
LAUNCH = "from support.remote_programs import main; main()"
TIMEOUT = 60.0


class Processes:
    """The test's worker and run processes, each killed at the end whatever happened."""

    def __init__(self, workdir: Path, store_url: str) -> None:
        self.workdir = workdir
        self.store_url = store_url
        self.ledger = workdir / "ledger"
        self.started: list[subprocess.Popen[str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path, "LEDGER": str(self.ledger), **extra}

    def _start(self, args: list[str], name: str, **extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args],
            cwd=self.workdir,
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / f"{name}.err", "w", encoding="utf-8"),  # noqa: SIM115
            text=True,
        )
        self.started.append(proc)
        return proc

    def worker(self, name: str, *, lease: float = 30.0, **extra: str) -> subprocess.Popen[str]:
        proc = self._start(["worker", self.store_url, QUEUE, str(lease)], name, **extra)
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("serving")  # it imported the tools
        return proc

    def run(
        self, rid: str, tool: str, *, name: str | None = None, **extra: str
    ) -> subprocess.Popen[str]:
        args = ["run", self.store_url, rid, tool, '{"city": "Oslo"}']
        return self._start(args, name or rid, **extra)

    def stderr(self, name: str) -> str:
        return (self.workdir / f"{name}.err").read_text(encoding="utf-8")

    def finished(self, proc: subprocess.Popen[str], name: str) -> dict[str, Any]:
        out, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, self.stderr(name)
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    def stop(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=TIMEOUT)

    def lines(self) -> list[list[str]]:
        if not self.ledger.exists():
            return []
        return [line.split() for line in self.ledger.read_text(encoding="utf-8").splitlines()]

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def procs(tmp_path: Path, store_url: str) -> Iterator[Processes]:
    processes = Processes(tmp_path, store_url)
    try:
        yield processes
    finally:
        processes.cleanup()


def wait_until(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def read(store_url: str, rid: str) -> tuple[list[TaskRecord], list[JournalRecord], list[Any]]:
    async def go() -> tuple[list[TaskRecord], list[JournalRecord], list[Any]]:
        engine = open_engine(store_url)
        try:
            tasks = await engine.list_tasks(rid)
            journal = await engine.read_journal(rid)
            events = [parse(e) for e in await engine.list_events(rid)]
        finally:
            await engine.dispose()
        return tasks, journal, events

    result: tuple[list[TaskRecord], list[JournalRecord], list[Any]] = asyncio.run(go())
    return result


def tool_entries(journal: list[JournalRecord]) -> list[JournalRecord]:
    return [e for e in journal if e.kind == "tool"]


def rid_for(request: pytest.FixtureRequest) -> str:
    return f"remote-{request.node.name}-{time.time_ns()}"[:200]


def test_a_remote_tool_runs_on_a_worker_with_a_real_tool_context(
    procs: Processes, request: pytest.FixtureRequest
) -> None:
    worker = procs.worker("w")
    rid = rid_for(request)
    started = time.monotonic()
    result = procs.finished(procs.run(rid, "inspect_call"), rid)
    print(f"run with one remote tool call, worker idle before: {time.monotonic() - started:.2f} s")
    tasks, journal, events = read(procs.store_url, rid)
    assert len(tasks) == 1
    task = tasks[0]
    assert (task.status, task.attempts, task.queue, task.tool_name) == (
        "completed",
        1,
        QUEUE,
        "inspect_call",
    )
    assert task.result is not None
    assert task.result.kind == "ok"
    report = load_value(task.result.output)
    assert isinstance(report, CallReport)
    assert (report.tool_name, report.call_id) == ("inspect_call", "call-1")
    assert json.loads(report.arguments) == {"city": "Oslo"}
    assert report.context_type == "support.remote_programs.Deps"
    assert report.context == CONTEXT  # the dataclass, its pydantic field and its text intact
    assert report.pid == worker.pid != result["pid"]
    # Journaled as a local tool's output is: once, under the call's key; the event says so.
    [entry] = tool_entries(journal)
    assert entry.key == task.call_key == "1:call-1"
    assert entry.payload["output"] == task.result.output
    [called] = [e for e in events if isinstance(e, ToolCalled)]
    assert (called.name, called.call_id, called.error) == ("inspect_call", "call-1", None)
    assert result["final_output"].startswith("result: ")
    assert [line[:3] for line in procs.lines()] == [["start", "inspect_call", "call-1"]]
    procs.stop(worker)


def test_a_worker_killed_mid_task_is_replaced_and_the_run_gets_one_result(
    procs: Processes, request: pytest.FixtureRequest
) -> None:
    workers = {p.pid: p for p in (procs.worker("w1"), procs.worker("w2"))}
    rid = rid_for(request)
    # The run's lease (1 s) is far shorter than its wait: its heartbeat must keep it.
    run = procs.run(rid, "slow", LEASE="1.0")
    first = wait_until("a worker to start the tool", procs.lines)[0]  # the other is killed
    victim = int(first[3])
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    workers[victim].wait(timeout=TIMEOUT)
    second = wait_until("the retry to start", lambda: procs.lines()[1:])[0]
    print(f"worker kill to the retry starting: {time.monotonic() - killed_at:.3f} s")
    survivor = int(second[3])
    assert survivor != victim
    result = procs.finished(run, rid)
    tasks, journal, events = read(procs.store_url, rid)
    [task] = tasks
    assert (task.status, task.attempts) == ("completed", 2)
    assert task.error is not None
    assert task.error.startswith("attempt 1: its worker (")
    assert task.error.endswith("died")
    assert task.result is not None
    assert task.result.output == {"json": f"Oslo by {survivor}"}
    [entry] = tool_entries(journal)
    assert entry.payload["output"] == {"json": f"Oslo by {survivor}"}
    assert result["final_output"] == f"result: Oslo by {survivor}"
    # Executed twice (at least once), ended once, recorded once.
    assert [(line[0], int(line[3])) for line in procs.lines()] == [
        ("start", victim),
        ("start", survivor),
        ("end", survivor),
    ]
    attempts = [type(e).__name__ for e in events if "Attempt" in type(e).__name__]
    assert attempts == ["AttemptStarted", "AttemptEnded"]  # the run's lease never lapsed
    procs.stop(workers[survivor])


def test_a_paused_worker_past_its_lease_has_its_late_result_refused(
    procs: Processes, request: pytest.FixtureRequest
) -> None:
    workers = {
        p.pid: (name, p)
        for name, p in (
            (name, procs.worker(name, lease=1.0, SLOW_SECONDS="0.5")) for name in ("w1", "w2")
        )
    }
    rid = rid_for(request)
    run = procs.run(rid, "slow")
    paused = int(wait_until("a worker to start the tool", procs.lines)[0][3])
    os.kill(paused, signal.SIGSTOP)  # mid-tool, for longer than its 1 s lease
    result = procs.finished(run, rid)  # the other worker ran it
    other = next(pid for pid in workers if pid != paused)
    assert result["final_output"] == f"result: Oslo by {other}"
    os.kill(paused, signal.SIGCONT)
    name, _proc = workers[paused]
    wait_until("the paused worker's tool to end", lambda: len(procs.lines()) == 4)
    wait_until("its result to be refused", lambda: "no longer holds it" in procs.stderr(name))
    assert "attempt 1 no longer holds it (the task is completed at attempt 2" in procs.stderr(name)
    tasks, journal, _ = read(procs.store_url, rid)
    [task] = tasks
    assert (task.status, task.attempts) == ("completed", 2)
    assert task.result is not None
    assert task.result.output == {"json": f"Oslo by {other}"}  # not overwritten by the late one
    [entry] = tool_entries(journal)
    assert entry.payload["output"] == {"json": f"Oslo by {other}"}
    assert sorted((line[0], int(line[3])) for line in procs.lines()) == sorted(
        [("start", paused), ("start", other), ("end", other), ("end", paused)]
    )
    for _, p in workers.values():
        procs.stop(p)


def test_a_task_whose_attempts_are_exhausted_fails_the_call_saying_why(
    procs: Processes, request: pytest.FixtureRequest
) -> None:
    procs.worker("w1")
    procs.worker("w2")
    rid = rid_for(request)
    result = procs.finished(procs.run(rid, "doomed"), rid)  # each worker dies running it
    # The model was shown the SDK's failure text, as for a local tool that raised.
    assert result["final_output"] == (
        "result: An error occurred while running the tool. Please try again."
    )
    tasks, journal, events = read(procs.store_url, rid)
    [task] = tasks
    assert (task.status, task.attempts, task.max_attempts, task.result) == ("failed", 2, 2, None)
    assert task.error is not None
    assert task.error.startswith("attempt 2: its worker (")
    [called] = [e for e in events if isinstance(e, ToolCalled)]
    assert called.error is not None
    assert called.error.type == "runplane_durable.runtime.remote_tools.RemoteToolError"
    assert called.error.message == (
        f"remote tool 'doomed' got no result: its task {task.id} on queue {QUEUE!r} failed after "
        f"2 attempt(s) (at most 2); the last one: {task.error}"
    )
    assert len(tool_entries(journal)) == 1  # the failure is journaled: a replay enqueues nothing
    assert [line[:2] for line in procs.lines()] == [["start", "doomed"], ["start", "doomed"]]


def test_a_run_killed_while_it_waits_resumes_onto_the_same_task(
    procs: Processes, request: pytest.FixtureRequest
) -> None:
    rid = rid_for(request)
    first = procs.run(rid, "slow", SLOW_SECONDS="0.2")  # no worker yet: it waits
    [task] = wait_until("the call's task", lambda: read(procs.store_url, rid)[0])
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=TIMEOUT)
    again = procs.run(rid, "slow", SLOW_SECONDS="0.2")  # resumes: re-attaches to the task
    time.sleep(0.5)
    assert again.poll() is None  # waiting for a worker
    worker = procs.worker("w")
    result = procs.finished(again, rid)
    tasks, journal, _ = read(procs.store_url, rid)
    assert [t.id for t in tasks] == [task.id]  # one call, one task, never enqueued twice
    assert tasks[0].attempts == 1
    assert len(tool_entries(journal)) == 1
    assert [line[0] for line in procs.lines()] == ["start", "end"]
    # The finished run replays from its journal: no task, no execution.
    replayed = procs.finished(procs.run(rid, "slow", name="replay"), "replay")
    assert replayed["final_output"] == result["final_output"]
    assert [t.id for t in read(procs.store_url, rid)[0]] == [task.id]
    assert len(procs.lines()) == 2
    procs.stop(worker)
