"""Commands that run no agent do not import the Agents SDK (the cost is in bench/startup.py).

Each command runs in a fresh interpreter exactly as the console script runs it, and reports
whether `agents` (or the openai client under it) ended up in `sys.modules`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import sys
from runplane.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(m for m in ("agents", "openai") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "CODE=" + str(code), file=sys.stderr)
"""

SETUP = """
from agents import Agent
from agents.testing import ScriptedModel, assistant_message
from runplane_durable import Runner, run_id
with run_id("startup-1"):
    Runner.run_sync(Agent(name="a", model=ScriptedModel([[assistant_message("ok")]])), "go")
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A directory whose database holds one finished durable run."""
    cwd = tmp_path_factory.mktemp("startup")
    env = {
        **os.environ,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        "RUNPLANE_DATABASE_URL": f"sqlite:///{cwd / 'runs.db'}",
    }
    subprocess.run([sys.executable, "-c", SETUP], env=env, cwd=cwd, check=True, timeout=120)
    return cwd, env


def _probe(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    return last, proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["backends"],
        ["backends", "--json"],
        ["runs", "list"],
        ["runs", "--help"],
        ["model", "--help"],
        ["model", "status"],
        ["chat", "--help"],
    ],
    ids=" ".join,
)
def test_a_command_that_runs_no_agent_does_not_import_the_sdk(
    args: list[str], workdir: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = workdir
    status, stdout = _probe(args, cwd, env)
    assert status == "HEAVY= CODE=0", status
    if args == ["runs", "list"]:
        assert "startup-1" in stdout  # it really read the database


def test_runs_show_reads_a_run_without_the_sdk(workdir: tuple[Path, dict[str, str]]) -> None:
    cwd, env = workdir
    status, stdout = _probe(["runs", "show", "startup-1"], cwd, env)
    assert status == "HEAVY= CODE=0", status
    assert "startup-1" in stdout


def test_importing_runplane_and_the_backends_packages_does_not_import_the_sdk() -> None:
    code = (
        "import sys, runplane, runplane_openai, runplane_durable, runplane_durable.lazy_errors\n"
        "from runplane import hookimpl, RunnerBackend, RunInfo, Registry\n"
        "assert 'agents' not in sys.modules, 'agents imported'\n"
        # the names that need the SDK get it
        "from runplane import Runner, install, SyncDriver, RunnerBackendBase, RunOptions\n"
        "assert 'agents' in sys.modules\n"
        "from runplane_durable import RunLeasedError, DurableBackend\n"
        "from agents.exceptions import AgentsException\n"
        "assert issubclass(RunLeasedError, AgentsException)\n"
        "assert RunLeasedError.__module__ == 'runplane_durable.errors'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
