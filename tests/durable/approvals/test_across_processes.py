"""Approvals across real processes: the program exits while its run waits, the approval comes
from `runplane runs approve` in another process, and the run finishes once, by the program
itself (`Runner.resume`) or by a `runplane worker`; on SQLite, PostgreSQL and in server mode."""

from __future__ import annotations

import os
import signal
import sys

import pytest
from support.workers import TIMEOUT, wait_until

from .conftest import CLI, Payments


def _stop_and_approve(payments: Payments, rid: str) -> None:
    stopped = payments.program(rid, "start")
    assert stopped == {"final_output": None, "waiting": ["p1"]}
    shown = payments.show(rid)
    assert shown["run"]["status"] == "awaiting_approval"
    assert shown["run"]["finished_at"] is None
    assert payments.lines("paid.log") == []
    listed = payments.cli("runs", "approvals", rid)
    assert "p1  pending" in listed.stdout
    approved = payments.cli("runs", "approve", rid, "--call", "p1")
    assert "p1  approved by " in approved.stdout
    assert "every call of run" in approved.stdout


def test_approved_from_the_cli_and_finished_by_the_program(payments: Payments) -> None:
    rid = "approve-program"
    _stop_and_approve(payments, rid)
    done = payments.program(rid, "resume")
    assert done == {"final_output": "done: paid 5", "waiting": []}
    assert len(payments.lines("paid.log")) == 1
    assert len(payments.lines("model.log")) == 2  # the stopped run's call, and the last one
    shown = payments.show(rid)
    assert shown["run"]["status"] == "completed"
    again = payments.program(rid, "resume")  # finished: replayed, nothing runs again
    assert again["final_output"] == "done: paid 5"
    assert len(payments.lines("paid.log")) == 1
    assert len(payments.lines("model.log")) == 2


def test_approved_from_the_cli_and_finished_by_a_worker(payments: Payments) -> None:
    rid = "approve-worker"
    _stop_and_approve(payments, rid)
    worker = payments.popen(
        [sys.executable, "-c", CLI, "worker", "payments", *payments.where, "--poll", "0.1"]
    )
    try:
        wait_until(
            lambda: payments.show(rid)["run"]["status"] == "completed",
            "the worker finishing the approved run",
            timeout=TIMEOUT,
        )
    finally:
        os.kill(worker.pid, signal.SIGTERM)
        worker.communicate(timeout=TIMEOUT)
    assert len(payments.lines("paid.log")) == 1
    types = payments.event_types(rid)
    assert types.count("run_completed") == 1
    assert types.count("approval_decided") == 1


def test_reject_from_the_cli_tells_the_model(payments: Payments) -> None:
    rid = "reject-cli"
    assert payments.program(rid, "start")["waiting"] == ["p1"]
    refused = payments.cli("runs", "reject", rid, "--call", "p9", check=False)
    assert refused.returncode != 0
    assert "never waited for call 'p9'" in refused.stdout + refused.stderr
    rejected = payments.cli("runs", "reject", rid, "--call", "p1", "--message", "over budget")
    assert "p1  rejected by " in rejected.stdout
    conflict = payments.cli("runs", "approve", rid, "--call", "p1", check=False)
    assert conflict.returncode != 0
    assert "rejected already" in conflict.stdout + conflict.stderr
    done = payments.program(rid, "resume")
    assert done["final_output"] == "done: over budget"
    assert payments.lines("paid.log") == []


@pytest.mark.parametrize("payments", ["sqlite", "postgresql", "server-sqlite"], indirect=True)
def test_an_approval_given_before_a_crash_is_honoured_after_it(payments: Payments) -> None:
    rid = "approve-crash"
    _stop_and_approve(payments, rid)
    resuming = payments.popen([sys.executable, "program.py", rid, "resume"], PAY_BLOCK="1")
    wait_until(lambda: (payments.workdir / "started").exists(), "the resumed run paying")
    os.kill(resuming.pid, signal.SIGKILL)  # kill -9 inside the approved tool
    resuming.communicate(timeout=TIMEOUT)
    assert payments.show(rid)["run"]["status"] == "running"  # orphaned, not finished
    done = payments.program(rid, "resume")
    assert done == {"final_output": "done: paid 5", "waiting": []}
    assert len(payments.lines("paid.log")) == 1
    (approval,) = payments.show_approvals(rid)
    assert approval["status"] == "approved"
    types = payments.event_types(rid)
    assert types.count("run_completed") == 1
    assert types.count("approval_decided") == 1
