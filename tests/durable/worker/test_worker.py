"""`runplane worker` with real processes: it finishes a run whose program was killed with
SIGKILL, runs runs started with `Runner.start`, never executes a run twice with two workers
racing, stops cleanly on SIGTERM giving its runs back, and leaves alone runs it does not know.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from typing import Any

import pytest
from agents import Agent
from runplane_durable import DurableBackend, LocalEngine
from runplane_durable.runtime.handle import RunHandle
from support.workers import Jobs, wait_until

from runplane import RunOptions

pytestmark = pytest.mark.slow

FINAL = "done {key}: STEP_A-0, STEP_B-1"


def _steps(show: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in show["steps"] if s["type"] == kind]


def _completed(jobs: Jobs, run_id: str) -> bool:
    return jobs.status(run_id) == "completed"


def test_a_worker_finishes_the_run_of_a_killed_program(jobs: Jobs) -> None:
    _a_worker_finishes_the_run_of_a_killed_program(jobs)


def test_in_server_mode_a_worker_finishes_the_run_of_a_killed_program(
    served_jobs: Jobs,
) -> None:
    """The same, every process (the program, the worker, `runs show`) on one `runplane
    server`: the worker claims the killed program's run through the server and finishes it."""
    _a_worker_finishes_the_run_of_a_killed_program(served_jobs)
    log = served_jobs.server_log()
    assert '"POST /api/v1/claimable-runs HTTP' in log  # the worker looked through the server
    assert log.count('"POST /api/v1/sessions HTTP') >= 2  # the program's opening, the worker's


def _a_worker_finishes_the_run_of_a_killed_program(jobs: Jobs) -> None:
    worker = jobs.worker()
    program = jobs.program("killed-1", "k1", JOBS_BLOCK="step_b")
    wait_until(lambda: jobs.marker("started"), "the program blocking in step_b")
    time.sleep(0.5)  # the worker looks several times meanwhile: a live program's run is not its
    assert jobs.show("killed-1")["run"]["owner"].split(":")[1] == str(program.pid)
    killed_at = time.time()  # before the kill: reaping it may take longer than the takeover
    jobs.kill9(program)

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
    assert 0 <= resumed_in < 30, resumed_in  # found at one of its next looks: its pid is gone

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


def _engine_start(jobs: Jobs, agent_name: str, key: str, **kw: Any) -> str:
    """Start a run with `Runner.start`'s engine call, for an agent this process only names."""

    async def go() -> str:
        backend = DurableBackend(LocalEngine(jobs.url))
        try:
            record = await backend.start(
                Agent(name=agent_name), f"job:{key}", RunOptions(), run_id=key, **kw
            )
            return record.id
        finally:
            await backend.engine.dispose()

    return asyncio.run(go())


def test_runs_started_for_a_worker_run_there_and_their_handle_gives_the_result(
    jobs: Jobs,
) -> None:
    ids = jobs.start("s1", "s2")  # by reference, in a process of its own
    assert ids == ["started-s1", "started-s2"]
    by_name = _engine_start(jobs, "jobber", "by-name")  # no reference: known by its name
    stranger = _engine_start(jobs, "stranger", "stranger")  # no worker knows this agent
    elsewhere = _engine_start(jobs, "jobber", "elsewhere", agent_ref="other_app:jobber")
    other_queue = _engine_start(jobs, "jobber", "other-queue", queue="batch")
    assert jobs.status("started-s1") == "queued"
    assert jobs.show("started-s1")["run"]["agent_ref"] == "jobs:agent"

    async def results() -> list[Any]:
        engine = LocalEngine(jobs.url, read_only=True)
        try:
            handles = [RunHandle(i, engine) for i in [*ids, by_name]]
            return list(await asyncio.gather(*(h.result(timeout=60) for h in handles)))
        finally:
            await engine.dispose()

    worker = jobs.worker()
    assert asyncio.run(results()) == [
        FINAL.format(key="s1"),
        FINAL.format(key="s2"),
        FINAL.format(key="by-name"),
    ]
    time.sleep(0.5)  # several more looks: what it does not know it leaves alone
    for left in (stranger, elsewhere, other_queue):
        assert jobs.status(left) == "queued", left
        assert [s["type"] for s in jobs.show(left)["steps"]] == ["run_queued"]
    show = jobs.show("started-s1")
    assert [s["type"] for s in show["steps"]][:2] == ["run_queued", "attempt_started"]
    text = " ".join(jobs.show("started-s1", as_json=False).split())
    assert "agent jobber (jobs:agent) queue default" in text
    assert "queued on default (agent jobs:agent), for a worker" in text
    assert f"attempt 1 started on {socket.gethostname()} pid {worker.pid} (new run)" in text
    assert show["steps"][1]["payload"]["pid"] == worker.pid
    _, err = jobs.stop(worker)
    assert worker.returncode == 0, err
    assert "starting run started-s1 (agent jobber)" in err

    batch = jobs.worker("--queue", "batch")  # the other queue's worker takes that one
    wait_until(lambda: _completed(jobs, other_queue), "the batch worker finishing its run")
    jobs.stop(batch)


def test_two_workers_racing_execute_each_run_exactly_once(jobs: Jobs) -> None:
    keys = [f"r{n:02d}" for n in range(24)]
    workers = [jobs.worker("--concurrency", "3", ready=False) for _ in range(2)]
    for w in workers:
        jobs.wait_ready(w)
    ids = jobs.start(*keys)
    wait_until(
        lambda: jobs.engine_call(_all_completed(ids)), "both workers finishing every run", 120
    )
    for w in workers:
        _, err = jobs.stop(w)
        assert w.returncode == 0, err
    # Each model call and each tool call of every run happened once, in one of the workers.
    calls = [tuple(line.split()[:2]) for line in jobs.lines("model.log")]
    assert sorted(calls) == sorted((k, str(o)) for k in keys for o in range(3))
    tools = [line.split()[1] for line in jobs.lines("calls.log")]
    assert sorted(tools) == sorted(f"{k}-{o}" for k in keys for o in range(2))
    pids = {w.pid for w in workers}
    by = {}
    for run_id in ids:
        show = jobs.show(run_id)
        started = _steps(show, "attempt_started")
        # One attempt: never claimed twice, not even once finished by the other worker.
        assert len(started) == 1, [
            (s["type"], s["payload"].get("pid"), s["payload"].get("reason"), s["created_at"])
            for s in show["steps"]
            if s["type"].startswith(("attempt_", "run_"))
        ]
        by[run_id] = started[0]["payload"]["pid"]
    assert set(by.values()) <= pids
    print(f"\nruns per worker: {sorted(list(by.values()).count(p) for p in pids)}")


def _all_completed(ids: list[str]) -> Any:
    async def check(engine: Any) -> bool:
        statuses = [(await engine.get_run(i)).status for i in ids]
        return statuses == ["completed"] * len(ids)

    return check


def test_a_worker_stopped_with_sigterm_gives_its_run_back_to_the_next_worker(
    jobs: Jobs,
) -> None:
    (jobs.workdir / "hold").write_text("")  # every tool waits while this file exists
    (run_id,) = jobs.start("held")
    first = jobs.worker()
    wait_until(lambda: jobs.marker("holding"), "the first worker holding in step_a")
    assert f" {first.pid}" in str(jobs.marker("holding"))
    stopped_at = time.monotonic()
    _, err = jobs.stop(first)
    took = time.monotonic() - stopped_at
    assert first.returncode == 0, err
    assert took < 10, took
    assert f"stopped run {run_id}; its lease is given back" in err
    run = jobs.show(run_id)
    assert (run["run"]["status"], run["run"]["owner"]) == ("running", None)  # resumable at once
    assert run["run"]["state"] == "stopped"
    (ended,) = _steps(run, "attempt_ended")
    assert ended["payload"]["reason"] == "interrupted"

    second = jobs.worker()
    wait_until(lambda: f" {second.pid}" in str(jobs.marker("holding")), "the second worker")
    (jobs.workdir / "hold").unlink()
    wait_until(lambda: _completed(jobs, run_id), "the second worker finishing the run")
    started = _steps(jobs.show(run_id), "attempt_started")
    assert [s["payload"]["pid"] for s in started] == [first.pid, second.pid]
    assert [line.split()[0] for line in jobs.lines("calls.log")] == ["step_a", "step_b"]
    jobs.stop(second)
    print(f"\nfigure: SIGTERM to the worker's exit, its run given back: {took * 1000:.0f} ms")


def test_a_stalled_programs_run_is_taken_over_once_its_lease_expires(jobs: Jobs) -> None:
    """A process that stops answering (SIGSTOP) but is alive is not known dead: the worker
    waits for its lease to expire, takes the run over, and the stalled process, woken, finds its
    writes refused: its late tool output is never recorded."""
    (jobs.workdir / "hold").write_text("")
    worker = jobs.worker()
    program = jobs.program("stalled-1", "st", JOBS_LEASE="1.5")
    wait_until(lambda: f" {program.pid}" in str(jobs.marker("holding")), "the program holding")
    os.kill(program.pid, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        wait_until(
            lambda: f" {worker.pid}" in str(jobs.marker("holding")), "the worker taking over"
        )
        show = jobs.show("stalled-1")
        started = _steps(show, "attempt_started")
        assert [s["payload"]["pid"] for s in started] == [program.pid, worker.pid]
        (ended,) = _steps(show, "attempt_ended")
        assert ended["payload"]["reason"] == "lease_lost"  # alive, but silent past its lease
        lease_expired = show["steps"][0]["payload"]["lease_seconds"]
        took_over_in = started[1]["payload"]["started_at"] - stopped_at
        assert took_over_in <= lease_expired + 5, took_over_in
        (jobs.workdir / "hold").unlink()
        wait_until(lambda: _completed(jobs, "stalled-1"), "the worker finishing the run")
    finally:
        os.kill(program.pid, signal.SIGCONT)
    out, err = program.communicate(timeout=60)
    assert program.returncode != 0, out
    assert "RunLeasedError: run 'stalled-1' was taken over by another process" in err
    show = jobs.show("stalled-1")
    assert show["run"]["final_output"] == FINAL.format(key="st")
    tools = [(s["payload"]["name"], s["attempt"]) for s in _steps(show, "tool_call")]
    assert tools == [("step_a", 2), ("step_b", 2)]  # the stalled one's late output: refused
    # step_a ran in both processes (at least once), its output recorded once.
    ran = [line.split()[0] + " " + line.split()[2] for line in jobs.lines("calls.log")]
    assert sorted(ran) == sorted(
        [f"step_a {worker.pid}", f"step_a {program.pid}", f"step_b {worker.pid}"]
    )
    jobs.stop(worker)
    print(f"\nfigure: SIGSTOP to the takeover with a 1.5 s lease: {took_over_in * 1000:.0f} ms")
