"""API: a backend's results are the SDK's own result classes, so every program keeps working."""

from __future__ import annotations

import pytest
from agents import Agent

from runplane import BackendRunner

from ._support import MODES, Ctx, Mode, check_result_type, execute, reply, requirement, scripted
from .plugin import ConformanceSettings


@requirement("API-1")
@pytest.mark.parametrize("mode", MODES)
def test_results_are_sdk_results(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    agent: Agent[Ctx] = Agent(name="assistant", model=scripted(reply("hello")))
    execution = execute(runplane_backend, mode, agent, "hi", timeout=runplane_settings.timeout)
    check_result_type(execution.result, mode)
    assert execution.result.final_output == "hello"
    assert execution.result.last_agent.name == agent.name
