"""The durability profile's fork server: every wait bounded, every way a child ends reported.

A backend that hangs must cost the profile one timeout, not the session; a fork server that dies
must be an error that says so, not a hang. The backends here are installed as a distribution, as
the profile's children find any backend.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runplane_conformance._durable_program import Script, Turn
from runplane_conformance._fork_client import ForkServer
from support.dists import make_dist

PLUGIN = """
import asyncio
import contextlib

import runplane
from runplane import RunHistory


class Capabilities:
    divergence_errors = (LookupError,)

    def run_id(self, run_id):
        return contextlib.nullcontext(run_id)

    async def history(self, run_id):
        return RunHistory(run_id, (), finished=False)


class Hangs:
    async def run(self, starting_agent, input, **kwargs):
        await asyncio.sleep(3600)

    def run_sync(self, starting_agent, input, **kwargs):
        raise NotImplementedError

    def run_streamed(self, starting_agent, input, **kwargs):
        raise NotImplementedError

    def durability(self):
        return Capabilities()


@runplane.hookimpl
def runplane_backends():
    return {"hangs": Hangs}
"""
SCRIPT = Script((Turn(text="hi"),))


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ForkServer]:
    root = make_dist(
        tmp_path / "dists",
        "runplane-hangs",
        entry_points={"hangs": "hangs_backend"},
        modules={"hangs_backend": PLUGIN},
    )
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{root}{os.pathsep}{path}" if path else str(root))
    workdir = tmp_path / "work"
    workdir.mkdir()
    server = ForkServer(workdir, timeout=20)
    try:
        yield server
    finally:
        server.close()


def job(tmp_path: Path, backend: str) -> dict[str, object]:
    return {
        "backend": backend,
        "run_id": "r1",
        "script": SCRIPT.to_json(),
        "mode": "run",
        "ledger": str(tmp_path),
    }


def test_a_child_that_outlives_its_timeout_is_killed(server: ForkServer, tmp_path: Path) -> None:
    server.timeout = 3
    started = time.monotonic()
    outcome = server.run(job(tmp_path, "hangs"))
    assert outcome.timed_out
    assert not outcome.killed
    assert outcome.signal == signal.SIGKILL
    assert time.monotonic() - started < 15
    assert "did not finish in time" in outcome.describe()
    assert gone(outcome.pid)


def test_a_failing_child_reports_its_exit_code_and_output(
    server: ForkServer, tmp_path: Path
) -> None:
    outcome = server.run(job(tmp_path, "no-such-backend"))
    assert (outcome.signal, outcome.code, outcome.output) == (None, 1, None)
    assert "Unknown runplane backend 'no-such-backend'" in outcome.describe()


def test_closing_a_server_stuck_on_a_child_ends_both(tmp_path: Path, server: ForkServer) -> None:
    """A job given up on (the start not seen in time) leaves no process behind once closed."""
    server.timeout = 0.5
    assert server.proc.stdin is not None
    server.proc.stdin.write((json.dumps({**job(tmp_path, "hangs"), "out": "x"}) + "\n").encode())
    server.proc.stdin.flush()
    first = server._line(time.monotonic() + 20)  # the child is forked; its run hangs
    assert first is not None
    server.close()
    assert gone(server.proc.pid)
    assert gone(first["pid"])


def gone(pid: int) -> bool:
    """The process ended (an orphan may stay a zombie until init reaps it: that counts)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_a_dead_fork_server_is_an_error_not_a_hang(server: ForkServer, tmp_path: Path) -> None:
    server.proc.kill()
    server.proc.wait()
    with pytest.raises(RuntimeError, match="fork server exited"):
        server.run(job(tmp_path, "hangs"))
