"""The SDK's private names the durable backend uses: checked by name, wrapped only while used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from agents.run_internal import tool_execution
from runplane_durable.runtime import sdk_internals

ENV_CODE = "import os; os.environ['OPENAI_AGENTS_DISABLE_TRACING'] = '1'\n"


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENV_CODE + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_every_required_name_is_in_the_pinned_sdk() -> None:
    assert sdk_internals.missing() == []


def test_a_name_the_sdk_moved_is_named_with_why_it_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(tool_execution, "_invoke_function_tool_with_metadata")
    assert sdk_internals.missing() == [
        "agents.run_internal.tool_execution._invoke_function_tool_with_metadata: invokes a "
        "function tool: wrapped to journal tool outputs"
    ]


def test_importing_against_an_sdk_that_moved_a_name_fails_naming_it(tmp_path: Path) -> None:
    done = _python(
        "import agents.usage\n"
        "del agents.usage._attach_normalized_usage\n"
        "import runplane_durable.runtime.sdk_internals\n",
        tmp_path,
    )
    assert done.returncode != 0
    assert "ImportError: runplane-durable needs openai-agents~=0.24.0" in done.stderr
    assert "agents.usage._attach_normalized_usage: replayed stream usage" in done.stderr


SEAMS = """
from agents import Agent, run
from agents.run_internal import run_loop, tool_execution
from agents.testing import ScriptedModel, assistant_message
from runplane_durable import DurableBackend, LocalEngine
from runplane_durable.runtime import intercept

ORIGINAL = (run_loop.get_model, tool_execution._invoke_function_tool_with_metadata,
            run.AgentRunner.run)

def current():
    return (run_loop.get_model, tool_execution._invoke_function_tool_with_metadata,
            run.AgentRunner.run)

def agent():
    return Agent(name="a", model=ScriptedModel([[assistant_message("hi")]]))

backend = DurableBackend(LocalEngine("sqlite:///runs.db"))
print("constructed", current() == ORIGINAL, intercept.installed())
print("ran", backend.run_sync(agent(), "x").final_output)
print("installed", all(a is not b for a, b in zip(current(), ORIGINAL)), intercept.installed())
intercept.uninstall()
print("uninstalled", current() == ORIGINAL, intercept.installed())
print("ran again", backend.run_sync(agent(), "y").final_output, intercept.installed())
"""


def test_the_seams_are_wrapped_by_the_first_durable_run_and_can_be_put_back(
    tmp_path: Path,
) -> None:
    done = _python(SEAMS, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "constructed True False",  # constructing a backend touches nothing in the SDK
        "ran hi",
        "installed True True",
        "uninstalled True False",
        "ran again hi True",
    ]
