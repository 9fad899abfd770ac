"""Small in-process backends for core tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agents import RunResult, RunResultStreaming

import runplane


class RecordingBackend:
    """Runs the SDK's own loop and records each call (method name, agent name, kwargs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def run(self, starting_agent: Any, input: Any, **kwargs: Any) -> RunResult:
        self.calls.append(("run", starting_agent.name, kwargs))
        return await runplane.sdk_runner().run(starting_agent, input, **kwargs)

    def run_sync(self, starting_agent: Any, input: Any, **kwargs: Any) -> RunResult:
        self.calls.append(("run_sync", starting_agent.name, kwargs))
        return runplane.sdk_runner().run_sync(starting_agent, input, **kwargs)

    def run_streamed(self, starting_agent: Any, input: Any, **kwargs: Any) -> RunResultStreaming:
        self.calls.append(("run_streamed", starting_agent.name, kwargs))
        return runplane.sdk_runner().run_streamed(starting_agent, input, **kwargs)


class BackendPlugin:
    """A plugin object contributing fixed backends, as a distribution's module would."""

    def __init__(self, backends: Mapping[str, Callable[[], Any]]) -> None:
        self._backends = dict(backends)

    @runplane.hookimpl
    def runplane_backends(self) -> Mapping[str, Callable[[], Any]]:
        return self._backends
