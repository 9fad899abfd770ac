"""`SyncDriver`: a backend's `run_sync` as the SDK's own, driving the backend's async `run`.

`agents.Runner.run_sync` keeps the thread's default event loop open between calls (sessions and
the SDK's pooled HTTP connections stay bound to it) and cancels the run cleanly on Ctrl-C. A
backend that wrote `asyncio.run(self.run(...))` instead would close that loop after every call
and break the next one. Backends make `run_sync` one line with this instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agents import Agent, RunResult
from agents.run import AgentRunner

__all__ = ["SyncDriver"]


class SyncDriver(AgentRunner):
    """`SyncDriver(backend.run).run_sync(agent, input, **options)` runs `backend.run`."""

    def __init__(self, run: Callable[..., Awaitable[RunResult]]) -> None:
        super().__init__()
        self._run = run

    async def run(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        return await self._run(starting_agent, input, **kwargs)
