"""`runplane worker MODULE[:ATTR] ...`: a process that runs a program's agents for runs no caller
waits for: runs whose process died, and runs started with `Runner.start`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..local.settings import ENV_DATABASE_URL
from .where import ServerOption, runs_at

if TYPE_CHECKING:
    from ..worker.loop import Worker

__all__ = ["worker"]


def worker(
    modules: Annotated[
        list[str],
        typer.Argument(
            help="Where the agents are: MODULE (every Agent at its top level) or MODULE:ATTR "
            "(one agent), imported from the working directory first.",
            metavar="MODULE[:ATTR]",
            show_default=False,
        ),
    ],
    queue: Annotated[str, typer.Option(help="The queue whose runs this worker takes.")] = (
        "default"
    ),
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help=f"Database URL or SQLite path (default: ${ENV_DATABASE_URL}, else the nearest "
            ".runplane/runplane.db from the working directory up).",
        ),
    ] = None,
    server: ServerOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs executed at once.")] = 4,
    poll: Annotated[
        float, typer.Option(min=0.01, help="Seconds between two looks for work when idle.")
    ] = 0.5,
    lease_seconds: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Lease of each run it executes: how long another host waits before taking "
            "a run of a silent worker over.",
        ),
    ] = 30.0,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="An approval policy (TOML, as runplane.policy.ApprovalPolicy.from_toml reads) "
            "applied to every run this worker executes, as runplane.policy.install applies it "
            "in a program: give the one the program runs under.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the agents of MODULE... for runs no caller waits for: (a) runs of these agents whose
    process died (killed, crashed, stalled past its lease) or stopped, resumed from their
    journal, and (b) runs started with Runner.start. Several workers may serve one database: a
    run executes in one at a time. SIGTERM or Ctrl-C stops it, giving its runs back at once."""
    # As `python -m` does: the program's own modules import from where the worker starts.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING)
    logging.getLogger("runplane_durable.worker").setLevel(logging.INFO)

    from ..engine import open_engine
    from ..errors import AgentRefError
    from ..worker.known import KnownAgents
    from ..worker.loop import Worker

    where = runs_at(db, server)  # before importing anything of the program
    if policy is not None:
        _install_policy(policy)
    try:
        known = KnownAgents.load(modules)
    except AgentRefError as exc:
        raise typer.BadParameter(str(exc), param_hint="MODULE[:ATTR]") from exc
    engine = open_engine(where)
    asyncio.run(
        _serve(
            Worker(
                engine,
                known,
                queue=queue,
                concurrency=concurrency,
                poll=poll,
                lease_seconds=lease_seconds,
            )
        )
    )
    typer.echo("runplane worker stopped", err=True)


def _install_policy(path: Path) -> None:
    """The policy of `--policy`, installed process-wide: the worker applies the installed policy
    to each agent it runs (a program's module may also install one when it is imported)."""
    from runplane.policy import ApprovalPolicy, PolicyError, install

    try:
        install(ApprovalPolicy.from_toml(path))
    except PolicyError as exc:  # a file missing, unreadable or not a policy: it says which
        raise typer.BadParameter(str(exc), param_hint="--policy") from None


async def _serve(w: Worker) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    names = ", ".join(sorted(w.known.by_name))
    # Said once the signals are ours: from this line on, SIGTERM stops the worker cleanly.
    typer.echo(
        f"runplane worker (pid {os.getpid()}): agents {names}; queue {w.queue!r}; "
        f"{w.concurrency} at once; {w.engine.describe()}",
        err=True,
    )
    try:
        await w.run(stop)
    finally:
        await w.engine.dispose()
