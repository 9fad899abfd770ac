"""`runplane worker --policy FILE`: the runs a worker executes are under the approval policy, as
a program's runs are under the one it installs, so a call the policy guards waits for approval
there too and continues once approved; a policy file that cannot be used stops the worker at
start, saying why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.workers import CLI, TIMEOUT, Jobs, wait_until

FINAL = "done {key}: STEP_A-0, STEP_B-1"  # what the jobs agent answers

POLICY = """\
default = "allow"

[[rules]]
name = "second step"
tools = ["step_b"]
"""


def _approvals(jobs: Jobs, run_id: str) -> list[tuple[str, str, str | None]]:
    found = jobs.engine_call(lambda engine: engine.list_approvals(run_id))
    return [(a.tool_name, a.status, a.policy) for a in found]


def test_a_worker_runs_started_runs_under_its_policy(jobs: Jobs) -> None:
    (jobs.workdir / "approvals.toml").write_text(POLICY, encoding="utf-8")
    (run_id,) = jobs.start("p1")
    worker = jobs.worker("--policy", "approvals.toml")
    wait_until(lambda: jobs.status(run_id) == "awaiting_approval", "the guarded call waiting")
    assert _approvals(jobs, run_id) == [("step_b", "pending", "second step")]
    assert [line.split()[0] for line in jobs.lines("calls.log")] == ["step_a"]  # not step_b

    approved = subprocess.run(
        [sys.executable, "-c", CLI, "runs", "approve", run_id, *jobs.where],
        cwd=jobs.workdir,
        env=jobs.env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert approved.returncode == 0, approved.stderr
    wait_until(lambda: jobs.status(run_id) == "completed", "the worker finishing the run")
    show = jobs.show(run_id)
    assert show["run"]["final_output"] == FINAL.format(key="p1")
    assert [line.split()[0] for line in jobs.lines("calls.log")] == ["step_a", "step_b"]
    _, err = jobs.stop(worker)
    assert worker.returncode == 0, err


def test_a_policy_file_the_worker_cannot_use_stops_it_saying_why(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text("from agents import Agent\nagent = Agent(name='a')\n")
    (tmp_path / "bad.toml").write_text('[[rules]]\nname = "x"\ntools = 3\n', encoding="utf-8")
    cases = {
        "missing.toml": "missing.toml: no such policy file",
        "bad.toml": "bad.toml",
    }
    for path, says in cases.items():
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CLI,
                "worker",
                "jobs",
                "--db",
                str(tmp_path / "runs.db"),
                "--policy",
                path,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={"COLUMNS": "400", "PATH": "/usr/bin:/bin", "OPENAI_AGENTS_DISABLE_TRACING": "1"},
        )
        assert done.returncode == 2, done.stderr
        assert "Invalid value for --policy" in done.stderr, done.stderr
        assert says in done.stderr, done.stderr
        assert not (tmp_path / "runs.db").exists()  # refused before anything was opened
