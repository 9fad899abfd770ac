"""`runplane demo --scripted`: the README's main job, offline, as a user runs it.

Every statement it prints must be what happened: a fresh id is killed in its tool and resumed; the
id of a finished run is only replayed, and the demo says so. Its closing commands must work pasted
exactly as printed, from where it ran, by a user whose PATH does not hold the venv.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPTS = Path(sysconfig.get_path("scripts"))
CHILD = [sys.executable, "-m", "runplane_durable.demo.child"]


@dataclass(frozen=True)
class Demo:
    cwd: Path
    env: dict[str, str]
    out: str  # stdout with whitespace runs collapsed (rich wraps at 80 columns)
    lines: list[str]


def _user_env() -> dict[str, str]:
    """A user's shell: the venv was never activated, so its bin is not on PATH."""
    env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "OPENAI_API_KEY": ""}
    env.pop("RUNPLANE_DATABASE_URL", None)  # the embedded default: .runplane/ where it runs
    env.pop("VIRTUAL_ENV", None)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != SCRIPTS]
    env["PATH"] = os.pathsep.join(path or [os.defpath])
    return env


def _demo(cwd: Path, run_id: str) -> Demo:
    env = _user_env()
    proc = subprocess.run(
        [str(SCRIPTS / "runplane"), "demo", "--scripted", "--run-id", run_id],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Demo(cwd, env, " ".join(proc.stdout.split()), proc.stdout.splitlines())


def _printed_command(demo: Demo, label: str) -> str:
    """The command on the line after `label`, exactly as printed."""
    index = next(i for i, line in enumerate(demo.lines) if line.startswith(label))
    return demo.lines[index + 1].strip()


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Demo, Demo]:
    """The same id twice: first a fresh run (killed, resumed), then the finished run again."""
    cwd = tmp_path_factory.mktemp("demo")
    return _demo(cwd, "demo-test"), _demo(cwd, "demo-test")


def test_a_fresh_run_is_killed_in_its_tool_and_resumed_from_the_journal(
    demos: tuple[Demo, Demo],
) -> None:
    out = demos[0].out
    assert "SCRIPTED model" in out
    assert "run id demo-test: new" in out
    assert "killed the process" in out
    assert "In the journal: 1 model response, 0 tool outputs" in out
    assert "the output of the tool it was running was never journaled" in out
    assert (
        "the resumed process asked the model for 1 of them, the other 1 came from the journal"
        in out
    )
    assert "The tool that was running at the kill ran again (1 time)" in out
    assert "Your order 42 has shipped with DHL" in out
    assert "Nothing was killed" not in out
    assert (demos[0].cwd / ".runplane" / "runplane.db").exists()


def test_the_id_of_a_finished_run_is_replayed_and_the_demo_says_so(
    demos: tuple[Demo, Demo],
) -> None:
    out = demos[1].out
    assert "run id demo-test: already in the journal, status 'completed'" in out
    assert "killed the process" not in out
    assert "ran again" not in out
    assert "3. Run the same program again" not in out
    assert "this process asked the model for 0 of them, the other 2 came from the journal" in out
    assert "No tool ran in this process: every tool output came from the journal" in out
    assert "Nothing was killed: the run had already finished" in out
    assert "Your order 42 has shipped with DHL" in out


@pytest.mark.parametrize("which", [0, 1])
def test_the_printed_follow_up_commands_work_as_printed(
    demos: tuple[Demo, Demo], which: int
) -> None:
    demo = demos[which]
    show = _printed_command(demo, "See every step of the run:")
    assert show.endswith("runs show demo-test")
    as_printed = subprocess.run(
        shlex.split(show),
        cwd=demo.cwd,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert as_printed.returncode == 0, f"{show!r} failed: {as_printed.stdout}{as_printed.stderr}"
    assert "demo-test" in as_printed.stdout
    assert "completed" in as_printed.stdout

    shown = subprocess.run(  # the same, for scripts: the history is the demo's run
        [*shlex.split(show), "--json"],
        cwd=demo.cwd,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, f"{show!r} failed: {shown.stdout}{shown.stderr}"
    history = json.loads(shown.stdout)
    assert history["run"]["status"] == "completed"
    assert (history["run"]["model_calls"], history["run"]["tool_calls"]) == (2, 1)
    kinds = [step["type"] for step in history["steps"]]
    assert [k for k in kinds if k in ("model_call", "tool_call", "run_completed")] == [
        "model_call",
        "tool_call",
        "model_call",
        "run_completed",
    ]

    # the killed attempt, ended by the one that resumed it, then that one to the end
    assert [k for k in kinds if k.startswith("attempt_")] == [
        "attempt_started",
        "attempt_ended",
        "attempt_started",
        "attempt_ended",
    ]
    reasons = [s["payload"]["reason"] for s in history["steps"] if s["type"] == "attempt_ended"]
    assert reasons == ["killed", "finished"]

    listing = _printed_command(demo, "List all runs:")
    listed = subprocess.run(
        shlex.split(listing),
        cwd=demo.cwd,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, f"{listing!r} failed: {listed.stdout}{listed.stderr}"
    assert "demo-test" in listed.stdout


def test_an_unfinished_run_of_a_killed_process_is_resumed_and_the_demo_says_so(
    tmp_path: Path,
) -> None:
    """A run an earlier process left in its tool (killed): the demo resumes it, killing it again."""
    child = subprocess.Popen(
        [*CHILD, "--run-id", "orphan", "--source", "scripted"],
        cwd=tmp_path,
        env=_user_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if json.loads(line)["type"] == "tool_started":
            break
    child.kill()
    child.wait()

    out = _demo(tmp_path, "orphan").out
    assert "run id orphan: already in the journal, status 'running'" in out
    assert "not finished, so this run resumes it" in out
    assert "killed the process" in out
    # The model's answer was the earlier process's; the one killed here added nothing.
    assert "committed 0 model responses and 0 tool outputs before it died" in out
    assert (
        "the resumed process asked the model for 1 of them, the other 1 came from the journal"
        in out
    )
    assert "The tool that was running at the kill ran again (1 time)" in out
