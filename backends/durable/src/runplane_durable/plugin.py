"""The `runplane` entry point of this distribution: the `durable` backend and its CLI."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import runplane
from runplane import RunnerBackend

if TYPE_CHECKING:
    import typer


@runplane.hookimpl
def runplane_backends() -> Mapping[str, Callable[[], RunnerBackend]]:
    from .backend import DurableBackend

    return {"durable": DurableBackend}


@runplane.hookimpl
def runplane_cli(app: typer.Typer) -> None:
    from .cli import demo, runs_app

    app.add_typer(runs_app, name="runs")
    app.command("demo")(demo)
