"""`runplane runs replay|fork`: re-execute a recorded run offline with today's code, and start a
new run from a recorded one's journal up to a step.

Registered on `runs_app` by `cli/runs.py`. Like it, this module imports neither the Agents SDK
nor the database layer at import time (`runplane --help` imports it): the commands do.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..engine import open_engine
from ..local.settings import ENV_DATABASE_URL
from ..records import DEFAULT_QUEUE
from ..remote_engine import ENV_SERVER_URL
from .where import ServerOption, runs_at

if TYPE_CHECKING:
    from agents import Agent

    from ..engine import Engine
    from ..records import RunRecord
    from ..runtime.replay import ReplayReport

__all__ = ["fork_command", "replay_command"]

# What `runs replay` exits with.
SAME, DIVERGED, CANNOT = 0, 1, 2

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        "--database",
        metavar="URL",
        help=f"Database URL or SQLite path (default: ${ENV_SERVER_URL} if set, else "
        f"${ENV_DATABASE_URL}, else the nearest .runplane/runplane.db from the working "
        "directory up).",
    ),
]
AgentOption = Annotated[
    str | None,
    typer.Option(
        "--agent",
        metavar="MODULE:ATTR",
        help="The agent to run, as an import reference (default: the run's own agent "
        "reference, `runs show` prints it). Imported from the working directory first.",
    ),
]


def _fail(message: str) -> NoReturn:
    Console(stderr=True, highlight=False).print(
        f"[bold red]error:[/] {escape(message)}", soft_wrap=True
    )
    raise typer.Exit(CANNOT)


def _agent_of(record: RunRecord, given: str | None) -> Agent[Any]:
    """The agent a command runs: `--agent`, else the run's stored reference."""
    from ..errors import AgentRefError
    from ..runtime.agent_refs import resolve

    ref = given if given is not None else record.agent_ref
    if ref is None:
        _fail(
            f"run {record.id!r} has no agent reference (its agent {record.agent_name!r} was not "
            "a module-level attribute of one of the program's modules when it ran); give the "
            "agent with --agent MODULE:ATTR"
        )
    # As `python -m` and `runplane worker` do: the program's modules import from where it starts.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return resolve(ref)
    except AgentRefError as exc:
        _fail(f"cannot import the agent: {exc}")


async def _found(engine: Engine, run_id: str) -> RunRecord:
    from ..errors import RunNotFoundError

    try:
        return await engine.get_run(run_id)
    except RunNotFoundError as exc:
        _fail(str(exc))


# -- runs replay ---------------------------------------------------------------------------------


def replay_command(
    run_id: str,
    agent: AgentOption = None,
    server: ServerOption = None,
    db: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Re-execute a recorded run offline with today's code; say where it diverges.

    No model call and no tool call happen (the journal answers both), nothing is written.
    Reports the first step where the
    code asks for something else than the record holds (instructions, tools, a call the record
    lacks or one it holds that the code never made), else "same as recorded".

    Exit status: 0 the same, 1 diverged, 2 cannot replay (unknown run, no journal, the agent
    cannot be imported).
    """
    report = asyncio.run(_replay(runs_at(db, server), run_id, agent))
    if as_json:
        typer.echo(json.dumps(_report_json(report), indent=2, default=str))
    else:
        console = Console(highlight=False)
        color = "green" if report.same else "red"
        console.print(
            f"run {escape(report.run_id)} ({report.status}): [{color}]"
            f"{escape(report.describe())}[/]",
            soft_wrap=True,
        )
    raise typer.Exit(SAME if report.same else DIVERGED)


async def _replay(where: str | None, run_id: str, ref: str | None) -> ReplayReport:
    from ..errors import DurableError
    from ..runtime.replay import NothingToReplayError, replay_run

    engine = open_engine(where, read_only=True)  # replaying writes nothing, anywhere
    try:
        record = await _found(engine, run_id)
        agent = _agent_of(record, ref)
        try:
            return await replay_run(engine, record.id, agent)
        except NothingToReplayError as exc:
            _fail(str(exc))
        except DurableError as exc:  # the database or server failed, a snapshot did not verify
            _fail(f"cannot replay run {record.id!r}: {exc}")
    finally:
        await engine.dispose()


def _report_json(report: ReplayReport) -> dict[str, Any]:
    from ..codec import plain_value

    divergence = report.divergence
    return {
        "run_id": report.run_id,
        "status": report.status,
        "same": report.same,
        "steps": report.steps,
        "model_calls": report.model_calls,
        "tool_outputs": report.tool_outputs,
        "divergence": None
        if divergence is None
        else {
            "step": divergence.step,
            "what": divergence.what,
            "recorded": divergence.recorded,
            "requested": divergence.requested,
            "changed": divergence.changed,
        },
        "final_output": plain_value(report.final_output),
        "recorded_output": plain_value(report.recorded_output),
        "ended": report.ended,
        "notes": list(report.notes),
    }


# -- runs fork -----------------------------------------------------------------------------------


def _step_option(value: str) -> int:
    try:
        step = int(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a step number; give one of the numbers `runplane runs show` "
            "prints (1, 2, ...)"
        ) from None
    if step < 1:
        raise typer.BadParameter(f"{step} is not a step number; steps start at 1")
    return step


def fork_command(
    run_id: str,
    at: Annotated[
        str,
        typer.Option(
            "--at",
            metavar="STEP",
            help="The step to fork at, as `runplane runs show` numbers it: the journal before "
            "it is shared (not executed again), the fork goes on live from it.",
        ),
    ],
    new_run_id: Annotated[
        str | None,
        typer.Option("--run-id", metavar="NEW", help="The fork's id (default: a new one)."),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            metavar="NAME",
            help=f"Queue the fork for a `runplane worker` of this queue (default "
            f"{DEFAULT_QUEUE!r}) that knows the agent.",
        ),
    ] = None,
    here: Annotated[
        bool,
        typer.Option(
            "--here",
            help="Execute the fork in this process (importing the agent) and print its final "
            "output, instead of queueing it for a worker.",
        ),
    ] = False,
    agent: AgentOption = None,
    server: ServerOption = None,
    db: DatabaseOption = None,
) -> None:
    """Start a new run from a recorded run's journal up to a step, live from there.

    The steps before STEP are shared, not executed again; the run forked is not touched. By
    default the fork is queued for a worker; --here runs it in this process."""
    step = _step_option(at)
    if here and queue is not None:
        raise typer.BadParameter(
            "--here executes the fork in this process; --queue queues it for a worker: give "
            "one of the two",
            param_hint="--queue",
        )
    if agent is not None and not here:
        raise typer.BadParameter(
            "--agent is for --here (a worker imports its own agents)", param_hint="--agent"
        )
    where = runs_at(db, server)
    asyncio.run(_fork(where, run_id, step, new_run_id, queue or DEFAULT_QUEUE, here, agent))


async def _fork(
    where: str | None,
    run_id: str,
    at: int,
    new_run_id: str | None,
    queue: str,
    here: bool,
    ref: str | None,
) -> None:
    from ..errors import DurableError
    from ..names import check_run_id
    from ..names import new_run_id as fresh_id
    from ..runtime.backend import DurableBackend
    from ..runtime.runner import resume_run

    reader = open_engine(where, read_only=True)  # found first: never a new empty database
    try:
        source = await _found(reader, run_id)
    finally:
        await reader.dispose()
    starting = _agent_of(source, ref) if here else None  # before anything is written
    try:
        chosen = check_run_id(new_run_id) if new_run_id is not None else fresh_id()
    except ValueError as exc:
        _fail(f"--run-id: {exc}")
    engine = open_engine(where)
    console = Console(highlight=False)
    try:
        try:
            fork = await engine.fork_run(
                source.id, at=at, new_run_id=chosen, queue=None if here else queue
            )
        except DurableError as exc:
            _fail(str(exc))
        shared = f"forked run {source.id} at step {at} as run {fork.id}"
        if starting is None:
            console.print(
                escape(
                    f"{shared}, queued on {queue}: a `runplane worker` of that queue that knows "
                    f"agent {fork.agent_ref or fork.agent_name} runs it; `runplane runs show "
                    f"{fork.id}` follows it"
                ),
                soft_wrap=True,
            )
            return
        Console(stderr=True, highlight=False).print(
            escape(f"{shared}; running it here"), soft_wrap=True
        )
        try:
            result = await resume_run(DurableBackend(engine), fork, starting)
        except DurableError as exc:
            _fail(f"run {fork.id}: {exc}")
        except Exception as exc:  # the run failed: recorded so, as any run's failure
            Console(stderr=True, highlight=False).print(
                f"[bold red]run {escape(fork.id)} failed:[/] "
                f"{escape(type(exc).__name__)}: {escape(str(exc))}",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        console.print(escape(_shown(result.final_output)), soft_wrap=True)
    finally:
        await engine.dispose()


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value
    from ..codec import plain_value
    from ..serde import dump_display

    return json.dumps(plain_value(dump_display(value)), default=str, ensure_ascii=False)
