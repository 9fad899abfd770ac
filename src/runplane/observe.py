"""Run observation: calls the `runplane_run_*` hooks around every run, whatever the backend.

Observation lives in the facade rather than in backends so that a host can bridge events to its own
telemetry for every backend, including third-party ones that know nothing about it. When no plugin
implements a hook, nothing is wrapped and the run pays nothing for it; `runplane_host_event` is
the same: without an implementation no `runplane.bridge.Bridge` is made (nor its module imported).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:  # for type checkers only: observer plugins import RunInfo without the SDK
    from agents import Agent, RunResultStreaming
    from agents.result import RunResultBase
    from agents.stream_events import StreamEvent

    from .bridge.events import HostEvent
    from .bridge.translate import Bridge

__all__ = ["RunInfo", "RunObservation", "run_id_of"]

_RUN_ID = "_runplane_run_id"  # set on the streamed results the facade returns


def run_id_of(result: object) -> str | None:
    """The `RunInfo.run_id` of a streamed run started through runplane's facade, else None.

    So that `runplane.bridge.bridge(result)` names the run as the hooks do, without the caller
    passing the id along.
    """
    value = getattr(result, _RUN_ID, None)
    return value if isinstance(value, str) else None


Mode = Literal["run", "run_sync", "run_streamed"]


@dataclass(frozen=True)
class RunInfo:
    """What an observer learns about a run when it starts.

    `run_id` is the backend's own id for the run when the backend reserves one (the durable
    backend's run id, as `runplane runs show` prints it), else a random hex unique to this run.
    """

    backend: str
    agent_name: str
    mode: Mode
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)

    @property
    def streamed(self) -> bool:
        return self.mode == "run_streamed"


class RunObservation:
    """One run's observation: start, optional stream events, exactly one finish.

    `input` is the run's input: a RunState there is what host events learn approval decisions
    from (`runplane.bridge.Bridge.on_start`).
    """

    __slots__ = ("_bridge", "_finished", "_hook", "_input", "info")

    def __init__(
        self,
        hook: Any,
        backend: str,
        agent: Agent[Any],
        mode: Mode,
        run_id: str | None = None,
        input: object = None,
    ) -> None:
        self._hook = hook
        self._finished = False
        self._input = input
        self._bridge: Bridge | None = None
        # getattr: agents.Runner passes whatever it is given through; so must we.
        agent_name = getattr(agent, "name", "")
        self.info = (
            RunInfo(backend=backend, agent_name=agent_name, mode=mode)
            if run_id is None  # the backend names no id: a random one, unique per run
            else RunInfo(backend=backend, agent_name=agent_name, mode=mode, run_id=run_id)
        )

    def start(self) -> None:
        if self._hook.runplane_run_started.get_hookimpls():
            self._hook.runplane_run_started(run=self.info)
        if self._hook.runplane_host_event.get_hookimpls():
            from .bridge.translate import Bridge

            self._bridge = Bridge(run_id=self.info.run_id, agent_name=self.info.agent_name)
            self._tell(self._bridge.on_start(self._input))

    def _tell(self, events: list[HostEvent]) -> None:
        for event in events:
            self._hook.runplane_host_event(run=self.info, event=event)

    def finish(self, result: RunResultBase | None, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        bridge = self._bridge
        if bridge is not None:
            if error is not None:
                self._tell(bridge.on_error(error))
            elif result is not None:
                if not self.info.streamed:  # a streamed run's items came with its events
                    self._tell(bridge.on_run_items(result))
                self._tell(bridge.on_result(result))
        if self._hook.runplane_run_finished.get_hookimpls():
            self._hook.runplane_run_finished(run=self.info, result=result, error=error)

    def stream(self, result: RunResultStreaming) -> RunResultStreaming:
        """Route `result.stream_events()` through the observers; the object stays the SDK's."""
        # A stand-in result (a test's default runner returning a bare object) may take no
        # attribute: it then has no id to name, and is handed back as it is.
        with contextlib.suppress(AttributeError, TypeError):
            setattr(result, _RUN_ID, self.info.run_id)
        hook = self._hook
        if not (
            hook.runplane_stream_event.get_hookimpls()
            or hook.runplane_run_finished.get_hookimpls()
            or self._bridge is not None
        ):
            return result
        original = getattr(result, "stream_events", None)
        if not callable(original):  # a stand-in with no stream to watch: over, as far as we see
            self._finished = True
            if hook.runplane_run_finished.get_hookimpls():
                hook.runplane_run_finished(run=self.info, result=result, error=None)
            return result
        info = self.info
        bridge = self._bridge
        tell_events = bool(hook.runplane_stream_event.get_hookimpls())

        async def stream_events() -> AsyncIterator[StreamEvent]:
            error: BaseException | None = None
            try:
                # aclosing: closing this stream closes the SDK's at once, in this task, so its
                # cleanup errors surface to the caller as they would without observers.
                async with contextlib.aclosing(
                    cast("AsyncGenerator[StreamEvent, None]", original())
                ) as events:
                    async for event in events:
                        if tell_events:
                            hook.runplane_stream_event(run=info, event=event)
                        if bridge is not None:
                            self._tell(bridge.on_stream_event(event))
                        yield event
            except BaseException as exc:
                error = exc
                raise
            finally:
                self.finish(None if error is not None else result, error)

        # An instance attribute shadows the method: consumers keep calling
        # `result.stream_events()` on the SDK's own RunResultStreaming.
        result.stream_events = stream_events  # type: ignore[method-assign]
        return result
