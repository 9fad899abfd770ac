"""Host events of a run as a host gets them (the `runplane_host_event` hook, `bridge(result)`).

`bridged` runs one `Script` on a runner in one mode and returns its host events, normalised so
that runs on two backends compare equal when they are indistinguishable to a host: the run id (a
backend's own id, a random one on the direct backend) is replaced by "<run>" wherever it appears,
which includes the message and reasoning ids the bridge makes from it when a model gives none.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from agents import RunResultStreaming

import runplane
from runplane import BackendRunner, RunInfo
from runplane.bridge import HostEvent, bridge

from ._scripts import Script, build
from ._support import Mode, not_streaming, run_in_loop

__all__ = ["Bridged", "HostEventRecorder", "bridged", "normalised", "recording"]

RUN = "<run>"


class HostEventRecorder:
    """A plugin that keeps every run's host events, by run id, in the order the hook gave them."""

    def __init__(self) -> None:
        self.runs: dict[str, list[HostEvent]] = {}

    @runplane.hookimpl
    def runplane_host_event(self, run: RunInfo, event: HostEvent) -> None:
        self.runs.setdefault(run.run_id, []).append(event)

    def only_run(self) -> tuple[str, list[HostEvent]]:
        """The one run recorded (the caller ran exactly one)."""
        assert len(self.runs) == 1, f"expected the host events of one run, got {list(self.runs)}"
        return next(iter(self.runs.items()))


@contextlib.contextmanager
def recording(registry: runplane.Registry | None = None) -> Iterator[HostEventRecorder]:
    """A `HostEventRecorder` registered as a plugin for the duration of the block."""
    recorder = HostEventRecorder()
    reg = registry or runplane.default_registry()
    name = reg.register(recorder, name=f"host-event-recorder-{id(recorder):x}")
    try:
        yield recorder
    finally:
        reg.unregister(name)


def normalised(events: list[HostEvent], run_id: str) -> list[dict[str, Any]]:
    """The events as dicts, the run id replaced by "<run>" in every text field."""

    def fix(value: Any) -> Any:
        return value.replace(run_id, RUN) if isinstance(value, str) and run_id else value

    return [{key: fix(value) for key, value in event.to_dict().items()} for event in events]


@dataclasses.dataclass
class Bridged:
    """A run's host events: from the hook and, for run_streamed, from `bridge(result)` too."""

    hooked: list[dict[str, Any]]
    iterated: list[dict[str, Any]] | None
    outcome: str  # "returned", or the exception's type name
    model_calls: int = 0


def bridged(
    runner: type[BackendRunner],
    mode: Mode,
    script: Script,
    timeout: float,
    registry: runplane.Registry | None = None,
) -> Bridged:
    """Run `script` once on `runner` in `mode` with a recorder plugged in; its host events."""
    built = build(script)
    iterated: list[HostEvent] | None = None
    outcome = "returned"
    with recording(registry) as recorder:
        try:
            if mode == "run":
                run_in_loop(
                    runner.run(built.agent, built.input, context=built.context, **built.kwargs),
                    timeout,
                    "run()",
                )
            elif mode == "run_sync":
                runner.run_sync(built.agent, built.input, context=built.context, **built.kwargs)
            else:
                iterated = []
                run_in_loop(_stream(runner, built, iterated), timeout, "bridge()")
        except Exception as exc:
            outcome = type(exc).__name__
        run_id, events = recorder.only_run()
    return Bridged(
        hooked=normalised(events, run_id),
        iterated=None if iterated is None else normalised(iterated, run_id),
        outcome=outcome,
        model_calls=len(built.model.calls),
    )


async def _stream(runner: type[BackendRunner], built: Any, out: list[HostEvent]) -> None:
    streaming: Any = runner.run_streamed(
        built.agent, built.input, context=built.context, **built.kwargs
    )
    if not isinstance(streaming, RunResultStreaming):
        raise AssertionError(not_streaming(streaming))
    # No run_id: bridge() must name the run as the hook does (the facade's RunInfo.run_id).
    async for event in bridge(streaming):
        out.append(event)
