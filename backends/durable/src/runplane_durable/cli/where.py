"""Where a command's runs are: `--db` (a database) or `--server` (a runplane server), the
option and the one check every command that takes both makes."""

from __future__ import annotations

from typing import Annotated

import typer

from ..remote_engine import ENV_SERVER_URL, ENV_TOKEN, is_server_url

__all__ = ["ServerOption", "runs_at"]

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help=f"Reach the runs through a runplane server (http://HOST:PORT; default: "
        f"${ENV_SERVER_URL}), sending ${ENV_TOKEN} if set.",
    ),
]


def runs_at(db: str | None, server: str | None) -> str | None:
    """The one place the command's runs are: `--db`, `--server`, or (None) the settings."""
    if db is not None and server is not None:
        raise typer.BadParameter(
            "give --db (a database) or --server (a runplane server), not both",
            param_hint="--server",
        )
    if server is not None and not is_server_url(server):
        raise typer.BadParameter(
            f"{server!r} is not a server's URL; give one such as http://127.0.0.1:6767 (a "
            "database goes with --db)",
            param_hint="--server",
        )
    return server if server is not None else db
