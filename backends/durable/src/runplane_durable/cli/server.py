"""`runplane server`: the durable engine served over HTTP under uvicorn."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import sys
from typing import Annotated, Any

import typer

from ..local.settings import ENV_DATABASE_URL

__all__ = ["ENV_TOKEN", "loopback", "server"]

ENV_TOKEN = "RUNPLANE_TOKEN"
DEFAULT_PORT = 6767


def loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server(
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless a token is set).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = DEFAULT_PORT,
    database: Annotated[
        str | None,
        typer.Option(
            help=f"Database URL or SQLite path (default: ${ENV_DATABASE_URL}, else the nearest "
            ".runplane/runplane.db from the working directory up, as embedded programs find it)."
        ),
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Largest request body taken, in bytes; a larger one is refused (413). "
            "Default: 8 MiB.",
        ),
    ] = None,
    fallback_poll: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="On PostgreSQL, a live event stream is woken by NOTIFY, and reads the database "
            "at least this often anyway, in seconds (a notification lost while the listener "
            "reconnects). Default: 2.",
        ),
    ] = None,
) -> None:
    """Serve durable runs over HTTP: the JSON API under /api/v1, for programs started with
    RUNPLANE_SERVER_URL, workers, `runplane runs --server` and anyone watching."""
    token = os.environ.get(ENV_TOKEN) or None
    if token is not None:
        from ..remote_engine import check_token

        try:
            check_token(token)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=ENV_TOKEN) from None
    if not loopback(host) and token is None:
        raise typer.BadParameter(
            f"{host} is reachable from other machines, and without a token anyone there could "
            f"read and change every run. Set {ENV_TOKEN} to a secret (clients send it as "
            "'Authorization: Bearer ...'), or bind a loopback address (127.0.0.1, ::1).",
            param_hint="--host",
        )
    import uvicorn

    from ..engine import open_engine
    from ..server.app import ServerSettings, create_app

    settings = ServerSettings(token=token)
    if max_body_bytes is not None:
        settings = dataclasses.replace(settings, max_body_bytes=max_body_bytes)
    if fallback_poll is not None:
        settings = dataclasses.replace(settings, fallback_poll_seconds=fallback_poll)
    app = create_app(open_engine(database, server=False), settings)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", lifespan="on", timeout_graceful_shutdown=5
    )
    _announcing(config).run()


def _announcing(config: Any) -> Any:
    """uvicorn's server, saying on stderr where it listens once it does (with --port 0 the
    port is known only then): `runplane server listening on http://127.0.0.1:PORT`."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            for server in self.servers:
                for bound in server.sockets:
                    host, port = bound.getsockname()[:2]
                    shown = f"[{host}]" if ":" in host else host
                    print(
                        f"runplane server listening on http://{shown}:{port}",
                        file=sys.stderr,
                        flush=True,
                    )

    return Server(config)
