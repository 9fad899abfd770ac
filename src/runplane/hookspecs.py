"""The hooks a runplane plugin may implement.

A plugin is any module or object named by an entry point in the `runplane` group. It contributes
backends through `runplane_backends`; it may also observe runs (to bridge events to a host's own
telemetry without touching any backend) and add `runplane` CLI subcommands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer
    from agents.result import RunResultBase
    from agents.stream_events import StreamEvent

    from .bridge.events import HostEvent
    from .observe import RunInfo
    from .protocol import RunnerBackend

PROJECT = "runplane"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def runplane_backends() -> Mapping[str, Callable[[], RunnerBackend]]:  # type: ignore[empty-body]
    """Backend name -> zero-argument factory.

    Factories are called lazily, at most once per process per name, so importing a plugin stays
    cheap even when its backend is heavy to construct.
    """


@hookspec
def runplane_run_started(run: RunInfo) -> None:
    """A run is about to start on `run.backend` (called before the backend sees it)."""


@hookspec
def runplane_stream_event(run: RunInfo, event: StreamEvent) -> None:
    """A streamed run delivered `event` to its consumer (called in consumption order)."""


@hookspec
def runplane_run_finished(
    run: RunInfo, result: RunResultBase | None, error: BaseException | None
) -> None:
    """A run ended with `result`, or with `error` (exactly one of the two is set)."""


@hookspec
def runplane_host_event(run: RunInfo, event: HostEvent) -> None:
    """A run made the host event `event` (`runplane.bridge`), on any backend, in run order.

    Streamed runs tell them as the consumer takes the stream's events; other runs tell
    `RunStarted` when they start and the rest when they end (they have no deltas).
    """


@hookspec
def runplane_cli(app: typer.Typer) -> None:
    """Add subcommands to the `runplane` CLI (`app.command()` or `app.add_typer()`)."""
