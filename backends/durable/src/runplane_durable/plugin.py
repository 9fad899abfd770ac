"""The `runplane` entry point of this distribution: the `durable` backend and its CLI."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import runplane

if TYPE_CHECKING:
    import typer

    from runplane import RunnerBackend


def _durable() -> RunnerBackend:
    # Imported when the backend is first asked for: listing backends (`runplane backends`) and
    # the `runs` commands never import the Agents SDK, which the backend needs.
    from .runtime.backend import DurableBackend

    return DurableBackend()


@runplane.hookimpl
def runplane_backends() -> Mapping[str, Callable[[], RunnerBackend]]:
    return {"durable": _durable}


@runplane.hookimpl
def runplane_cli(app: typer.Typer) -> None:
    from .cli.runs import demo, runs_app
    from .cli.server import server
    from .cli.worker import worker

    app.add_typer(runs_app, name="runs")
    app.command("demo")(demo)
    app.command("server")(server)
    app.command("worker")(worker)
