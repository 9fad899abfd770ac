"""The SDK's own agent loop, cut off after RUNPLANE_DEADLINE_SECONDS (default 300)."""

import asyncio
import os
from typing import Any

from agents import Agent, RunResult, RunResultStreaming
from agents.exceptions import AgentsException

import runplane


class DeadlineExceeded(AgentsException):
    """The run took longer than its deadline and was cancelled."""


class DeadlineBackend(runplane.RunnerBackendBase):
    """run, run_sync and run_streamed come from the base class, with agents.Runner's signatures."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds or float(os.environ.get("RUNPLANE_DEADLINE_SECONDS", "300"))

    async def _run(
        self, agent: Agent[Any], input: Any, options: runplane.RunOptions[Any], mode: str
    ) -> RunResult:
        # runplane.sdk_runner() is the SDK's own AgentRunner, even under runplane.install().
        run = runplane.sdk_runner().run(agent, input, **options.as_kwargs())
        try:
            return await asyncio.wait_for(run, self.seconds)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"run exceeded its {self.seconds:g} s deadline") from None

    def _run_streamed(
        self, agent: Agent[Any], input: Any, options: runplane.RunOptions[Any]
    ) -> RunResultStreaming:
        # Synchronous, like the SDK's: it returns at once and events flow as the run produces
        # them. At the deadline the run is cancelled; the stream then ends early.
        result = runplane.sdk_runner().run_streamed(agent, input, **options.as_kwargs())
        timer = asyncio.get_running_loop().call_later(self.seconds, result.cancel)
        if result.run_loop_task is not None:
            result.run_loop_task.add_done_callback(lambda _: timer.cancel())
        return result
