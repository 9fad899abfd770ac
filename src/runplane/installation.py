"""`runplane.install`: unchanged `agents.Runner` calls run on a runplane backend, process-wide.

`agents.Runner`'s classmethods, and the SDK's nested runs (`Agent.as_tool`), all delegate to the
SDK's default `AgentRunner`. `install` replaces that default with one that forwards to a runplane
backend, and remembers the runner it displaced so that backends built on the SDK's own loop (the
direct backend) keep using it instead of forwarding to themselves forever.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from agents import Agent, RunResult, RunResultStreaming
from agents.run import AgentRunner, get_default_agent_runner, set_default_agent_runner

from .facade import BackendRunner, runner
from .registry import Registry

__all__ = ["Installation", "install", "installed", "sdk_runner", "uninstall"]

_lock = threading.Lock()


class _ForwardingAgentRunner(AgentRunner):
    """The SDK's default-runner slot, filled with a forwarder to a runplane backend."""

    def __init__(self, facade: type[BackendRunner], displaced: AgentRunner) -> None:
        super().__init__()
        self.facade = facade
        self.displaced = displaced

    async def run(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        return await self.facade.run(starting_agent, input, **kwargs)

    def run_sync(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        return self.facade.run_sync(starting_agent, input, **kwargs)

    def run_streamed(
        self, starting_agent: Agent[Any], input: Any, **kwargs: Any
    ) -> RunResultStreaming:
        return self.facade.run_streamed(starting_agent, input, **kwargs)


class Installation:
    """Returned by `install`; usable as a context manager that restores the previous runner."""

    def __init__(self, name: str, previous: AgentRunner) -> None:
        self.name = name
        self._previous = previous

    def __enter__(self) -> Installation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _lock:
            set_default_agent_runner(self._previous)


def install(name: str, *, registry: Registry | None = None) -> Installation:
    """Route every `agents.Runner` call in this process through backend `name`."""
    facade = runner(name, registry=registry)
    with _lock:
        previous = get_default_agent_runner()
        displaced = previous.displaced if isinstance(previous, _ForwardingAgentRunner) else previous
        set_default_agent_runner(_ForwardingAgentRunner(facade, displaced))
    return Installation(name, previous)


def uninstall() -> None:
    """Give `agents.Runner` back the SDK's own runner (a no-op when nothing is installed)."""
    with _lock:
        current = get_default_agent_runner()
        if isinstance(current, _ForwardingAgentRunner):
            set_default_agent_runner(current.displaced)


def installed() -> str | None:
    """The backend `agents.Runner` currently runs on, or None for the SDK's own runner."""
    current = get_default_agent_runner()
    if isinstance(current, _ForwardingAgentRunner):
        return current.facade.selected_backend()
    return None


def sdk_runner() -> AgentRunner:
    """The SDK's own `AgentRunner`: what `agents.Runner` would use if runplane were not installed.

    Backends that run the SDK's loop in process call this rather than `agents.Runner`, which may be
    forwarding to them.
    """
    current = get_default_agent_runner()
    if isinstance(current, _ForwardingAgentRunner):
        return current.displaced
    return current
