"""`runplane worker` with real processes: it finishes a run whose program was killed with
SIGKILL, runs runs started with `Runner.start`, never executes a run twice with two workers
racing, stops cleanly on SIGTERM giving its runs back, and leaves alone runs it does not know.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from support.workers import Jobs, wait_until

pytestmark = pytest.mark.slow

FINAL = "done {key}: STEP_A-0, STEP_B-1"


def _steps(show: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in show["steps"] if s["type"] == kind]


def _completed(jobs: Jobs, run_id: str) -> bool:
    return jobs.status(run_id) == "completed"


def test_a_worker_finishes_the_run_of_a_killed_program(jobs: Jobs) -> None:
    worker = jobs.worker()
    jobs.wait_ready(worker)
    program = jobs.program("killed-1", "k1", JOBS_BLOCK="step_b")
    wait_until(lambda: jobs.marker("started"), "the program blocking in step_b")
    time.sleep(0.5)  # the worker looks several times meanwhile: a live program's run is not its
    assert jobs.show("killed-1")["run"]["owner"].split(":")[1] == str(program.pid)
    jobs.kill9(program)
    killed_at = time.time()

    wait_until(lambda: _completed(jobs, "killed-1"), "the worker finishing the run")
    show = jobs.show("killed-1")
    assert show["run"]["final_output"] == FINAL.format(key="k1")
    assert show["run"]["agent_ref"] == "jobs:agent"  # found and stored by the program
    started = _steps(show, "attempt_started")
    assert [(s["payload"]["attempt"], s["payload"]["pid"]) for s in started] == [
        (1, program.pid),
        (2, worker.pid),
    ]
    (ended_1, ended_2) = _steps(show, "attempt_ended")
    assert (ended_1["payload"]["reason"], ended_2["payload"]["reason"]) == ("killed", "finished")
    resumed_in = started[1]["payload"]["started_at"] - killed_at
    assert 0 <= resumed_in < 5, resumed_in  # found at its next look: its pid is gone

    # Which process did which step: each step says its attempt, and the attempt its pid.
    by_step = [
        (s["type"], s["payload"].get("ordinal", s["payload"].get("name")), s["attempt"])
        for s in show["steps"]
        if s["type"] in ("model_call", "tool_call")
    ]
    assert by_step == [
        ("model_call", 0, 1),
        ("tool_call", "step_a", 1),
        ("model_call", 1, 1),
        ("tool_call", "step_b", 2),  # in flight at the kill: run again by the worker
        ("model_call", 2, 2),
    ]
    text = " ".join(jobs.show("killed-1", as_json=False).split())  # as one line, unwrapped
    host = socket.gethostname()
    assert f"attempt 1 on {host} pid {program.pid} ended: killed" in text
    assert f"attempt 2 started on {host} pid {worker.pid} (resumed" in text
    assert f"[attempt 1, pid {program.pid}]" in text
    assert f"[attempt 2, pid {worker.pid}]" in text
    # Nothing repeated but the tool in flight; the model calls once each over both processes.
    assert [line.split()[:2] for line in jobs.lines("model.log")] == [
        ["k1", "0"],
        ["k1", "1"],
        ["k1", "2"],
    ]
    assert [line.split()[0] for line in jobs.lines("calls.log")] == ["step_a", "step_b"]
    _, err = jobs.stop(worker)
    assert worker.returncode == 0, err
    assert "resuming run killed-1" in err
    print(f"\nfigure: kill -9 to the run going on in the worker: {resumed_in * 1000:.0f} ms")
