"""The `runplane` entry point of this distribution: the `runplane model` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import runplane

if TYPE_CHECKING:
    import typer


@runplane.hookimpl
def runplane_cli(app: typer.Typer) -> None:
    from .cli import build_model_app

    app.add_typer(build_model_app(), name="model")
