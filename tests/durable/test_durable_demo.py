"""`runplane demo --scripted`: the README's main job, offline, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_kills_the_run_and_resumes_it_without_asking_the_model_again(tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "OPENAI_API_KEY": ""}
    env.pop("RUNPLANE_DATABASE_URL", None)  # the embedded default: .runplane/ in the cwd
    proc = subprocess.run(
        [sys.executable, "-m", "runplane", "demo", "--scripted", "--run-id", "demo-test"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SCRIPTED model" in out
    assert "killed the process" in out
    assert "In the journal: 1 model call(s), 0 tool output(s)" in out
    assert "asked the model for 1 of them, the other 1 came from the journal" in out
    assert "Your order 42 has shipped with DHL" in out
    assert "runplane runs show demo-test" in out
    assert (tmp_path / ".runplane" / "runplane.db").exists()

    shown = subprocess.run(
        [sys.executable, "-m", "runplane", "runs", "show", "demo-test", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    history = json.loads(shown.stdout)
    assert history["run"]["status"] == "completed"
    assert (history["run"]["model_calls"], history["run"]["tool_calls"]) == (2, 1)
    kinds = [step["type"] for step in history["steps"]]
    # the killed attempt, ended by the one that resumed it, then that one to the end
    assert kinds == [
        "attempt_started",
        "model_call",
        "attempt_ended",
        "attempt_started",
        "tool_call",
        "model_call",
        "attempt_ended",
        "run_completed",
    ]
    reasons = [s["payload"]["reason"] for s in history["steps"] if s["type"] == "attempt_ended"]
    assert reasons == ["killed", "finished"]
