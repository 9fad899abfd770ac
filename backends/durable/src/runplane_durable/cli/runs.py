"""`runplane runs list|show|cancel|prune`: a run's full history, stopping a run from any shell,
and keeping a long-lived database bounded. `runs replay|fork` live in `cli/replay.py`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import lazy_errors as errors
from ..attempts import by_step
from ..codec import plain_value
from ..engine import open_engine
from ..events import (
    ApprovalDecided,
    ApprovalRequested,
    AttemptEnded,
    AttemptStarted,
    CancelRequested,
    Event,
    HandoffRequested,
    ModelCalled,
    RunAwaitingApproval,
    RunFailed,
    RunForked,
    RunQueued,
    ToolCalled,
    UnknownEvent,
    in_full,
    parse,
)
from ..local.settings import ENV_DATABASE_URL
from ..records import Approval, CancelMode, EventRecord, RunRecord, check_status
from ..remote_engine import ENV_SERVER_URL
from ..states import (
    STATES,
    STATUSES,
    Holder,
    State,
    run_state,
    status_of,
    tools_cut_off,
    tools_in_flight,
)
from . import replay
from .where import ServerOption, runs_at

if TYPE_CHECKING:
    from ..engine import Engine

# The database layer (`local`, SQLAlchemy) is imported by the commands that read it, not here:
# `runplane --help` imports this module. Nothing here imports the Agents SDK.

__all__ = ["demo", "parse_duration", "plain_value", "runs_app", "short_ids"]

runs_app = typer.Typer(
    help="Durable runs: list them, show one's full history, cancel one, prune old ones.",
    no_args_is_help=True,
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help=f"Database URL or SQLite path (default: ${ENV_SERVER_URL} if set, else "
        f"${ENV_DATABASE_URL}, else the nearest .runplane/runplane.db from the working "
        "directory up).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

ID_WIDTH = 16  # longer run ids are shortened in `runs list`, whole everywhere else
_ID_TAIL = 5


def _when(ts: float | None) -> str:
    """Local time to the millisecond."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _clock(ts: float) -> str:
    return _when(ts)[11:]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")


def _run_json(run: RunRecord, state: State) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in dataclasses.asdict(run).items():
        data[key] = value
        if key == "status":  # the derived state next to the stored status
            data["state"] = state.state
            data["state_detail"] = state.why
    data["final_output"] = plain_value(run.final_output)
    return data


def _engine(db: str | None) -> Engine:
    """Looking at runs never creates or writes anything."""
    return open_engine(db, read_only=True)


def short_ids(ids: list[str], width: int = ID_WIDTH) -> dict[str, str]:
    """Each id as shown in a table: whole if it fits in `width`, else its head, an ellipsis and
    its tail, the head lengthened until no two shown ids look alike."""
    shown: dict[str, str] = {}
    pending = list(dict.fromkeys(ids))
    head = width - 1 - _ID_TAIL
    while pending:
        cut = {
            i: i if len(i) <= head + 1 + _ID_TAIL else f"{i[:head]}…{i[-_ID_TAIL:]}"
            for i in pending
        }
        seen = Counter([*cut.values(), *shown.values()])
        pending = []
        for full, short in cut.items():
            if short == full or seen[short] == 1:
                shown[full] = short
            else:
                pending.append(full)
        head += 1
    return shown


def _one_of(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in allowed:
        raise typer.BadParameter(
            f"{value!r} is not a run {what}; use one of: {', '.join(allowed)}."
        )
    return value


def _status_option(value: str | None) -> str | None:
    return _one_of(value, STATUSES, "status")


def _state_option(value: str | None) -> str | None:
    return _one_of(value, STATES, "state")


@runs_app.command("list")
def list_runs(
    db: DbOption = None,
    server: ServerOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    status: Annotated[
        str | None,
        typer.Option(
            help=f"Only runs with this stored status: {', '.join(STATUSES)}.",
            callback=_status_option,
        ),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            help=f"Only runs in this state: {', '.join(STATES)} (running, orphaned and "
            "stopped runs are stored as running).",
            callback=_state_option,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Runs, newest first: id, state, agent, started, turns, tokens."""
    if state is not None and status is not None and status != status_of(state):
        raise typer.BadParameter(
            f"state {state!r} is a run stored with status {status_of(state)!r}, not "
            f"{status!r}; give one of the two.",
            param_hint="--state",
        )
    where, rows = asyncio.run(_list(runs_at(db, server), limit, status, state))
    if as_json:
        typer.echo(json.dumps([_run_json(r, s) for r, s in rows], indent=2, default=str))
        return
    console = Console(highlight=False)
    count = f"{len(rows)} run" + ("" if len(rows) == 1 else "s")
    console.print(f"{count} in the {escape(where)}", soft_wrap=True)
    if not rows:
        return
    ids = short_ids([r.id for r, _ in rows])
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    width = max(len("state"), *(len(s.short_label) for _, s in rows))
    table.add_column("id", no_wrap=True, min_width=min(ID_WIDTH, max(map(len, ids.values()))))
    table.add_column("state", no_wrap=True, min_width=width)
    table.add_column("agent", overflow="ellipsis", no_wrap=True, ratio=1)
    table.add_column("started", no_wrap=True, min_width=16)
    table.add_column("turns", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    for r, s in rows:
        table.add_row(
            escape(ids[r.id]),
            f"[{_COLOR.get(s.state, 'default')}]{s.short_label}[/]",
            escape(r.agent_name),
            _when(r.created_at)[:16],
            str(r.model_calls),
            str(r.total_tokens),
        )
    console.print(table)
    if any(short != full for full, short in ids.items()):
        console.print("[dim]… marks a shortened id; `runs show` takes it as shown.[/]")
    if any(s.cancel_requested is not None for _, s in rows):
        console.print("[dim](cancel) marks a run asked to stop that has not stopped yet.[/]")


_COLOR = {
    "queued": "yellow",
    "running": "cyan",
    "orphaned": "red",
    "stopped": "yellow",
    "awaiting_approval": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "dim",
}


async def _list(
    db: str | None, limit: int, status: str | None, state: str | None
) -> tuple[str, list[tuple[RunRecord, State]]]:
    engine = _engine(db)
    try:
        if state is not None:  # the states of one stored status, told apart here
            runs = await engine.list_runs(limit=None, status=status_of(state))
        else:
            runs = await engine.list_runs(
                limit=limit, status=None if status is None else check_status(status)
            )
        now = time.time()
        rows = [(r, run_state(r, now=now)) for r in runs]
        if state is not None:
            rows = [row for row in rows if row[1].state == state][:limit]
        return engine.describe(), rows
    finally:
        await engine.dispose()


@runs_app.command("show")
def show_run(
    run_id: str, db: DbOption = None, server: ServerOption = None, as_json: JsonOption = False
) -> None:
    """Everything a run did: model calls with latency and usage, tool calls with arguments,
    outputs, errors and durations, handoffs, approvals, attempts, and its outcome."""
    where, run, events, parsed = asyncio.run(_show(runs_at(db, server), run_id))
    state = run_state(run)
    flying = tools_in_flight(run.status, parsed)
    attempts = by_step(parsed)
    cut_off = tools_cut_off(run.status, parsed)
    if as_json:
        steps = [
            {**dataclasses.asdict(e), "time": _iso(e.created_at), "attempt": _number(a)}
            for e, a in zip(events, attempts, strict=True)
        ]
        typer.echo(
            json.dumps(
                {
                    "database": where,
                    "run": _run_json(run, state),
                    "steps": steps,
                    "in_flight": [dataclasses.asdict(f) for f in flying],
                    "cut_off": [dataclasses.asdict(f) for f in cut_off],
                },
                indent=2,
                default=str,
            )
        )
        return
    console = Console(highlight=False)
    console.print(f"[dim]in the {escape(where)}[/]", soft_wrap=True)
    console.print(
        f"[bold]run[/] {escape(run.id)}   [bold]state[/] "
        f"[{_COLOR.get(state.state, 'default')}]{state.label}[/]"
        + ("" if state.state == run.status else f" (stored status {run.status})"),
        soft_wrap=True,
    )
    console.print(
        f"agent {escape(run.agent_name)}"
        + (f" ({escape(run.agent_ref)})" if run.agent_ref else "")
        + (f"   queue {escape(run.queue)}" if run.queue else ""),
        soft_wrap=True,
    )
    console.print(f"started {_when(run.created_at)}   finished {_when(run.finished_at)}")
    console.print(
        f"{_n(run.model_calls, 'model call')}, {_n(run.tool_calls, 'tool call')}, "
        f"{_n(run.requests, 'request')}, "
        f"{run.input_tokens} in + {run.output_tokens} out = {run.total_tokens} tokens"
    )
    console.print(f"input: {escape(_short(run.input))}\n")
    in_flight = {f.key for f in flying}
    cut = {f.key for f in cut_off}
    day = None
    several = len({id(a) for a in attempts if a is not None}) > 1
    for e, p, a in zip(events, parsed, attempts, strict=True):
        stamp = _when(e.created_at)
        if stamp[:10] != day:  # each event's time of day, under the date it happened on
            day = stamp[:10]
            console.print(f"[dim]     {day}[/]")
        line = _describe(p, f"[dim]{e.seq:>4} {stamp[11:]}[/]", in_flight, cut)
        if several and a is not None and isinstance(p, (ModelCalled, ToolCalled)):
            # Which process did this step, beside it, once a run ran in more than one.
            first, _, rest = line.partition("\n")
            line = f"{first} [dim]{escape(_by(a))}[/]" + (f"\n{rest}" if rest else "")
        console.print(line)
    if run.status == "completed":
        console.print(
            f"\n[bold green]final output[/]: {escape(_short(plain_value(run.final_output), 2000))}"
        )
    elif run.status == "failed":
        console.print(
            f"\n[bold red]error[/] {escape(run.error_type or '')}: {escape(run.error or '')}"
        )
    else:
        console.print(
            f"\n[{_COLOR.get(state.state, 'default')}]{state.label}[/]: {escape(state.why)}"
        )


_ENDED = {
    "finished": "finished",
    "failed": "failed",
    "cancelled": "cancelled",
    "awaiting_approval": "awaiting approval",
    "interrupted": "interrupted (stopped; resumable)",
    "lease_lost": "lease lost (another process took the run over)",
    "killed": "killed",
}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _describe(
    e: Event | UnknownEvent,
    head: str,
    in_flight: set[str],
    cut_off: frozenset[str] | set[str] = frozenset(),
) -> str:
    if isinstance(e, ModelCalled):
        return _model_call(e, head, in_flight, cut_off)
    if isinstance(e, CancelRequested):
        return f"{head} [yellow]{escape(_cancel_requested(e))}[/]"
    if isinstance(e, ToolCalled):
        return _tool_call(e, head)
    if isinstance(e, (AttemptStarted, AttemptEnded)):
        return f"{head} [cyan]{escape(_attempt(e))}[/]"
    if isinstance(e, RunAwaitingApproval):
        asked = ", ".join(f"{c.name} ({c.call_id})" for c in e.calls or ())
        return f"{head} [yellow]awaiting approval[/]" + (f" of {escape(asked)}" if asked else "")
    if isinstance(e, ApprovalRequested):
        given = f"({_short(e.arguments, 200)})" if e.arguments is not None else "(...)"
        return f"{head} [yellow]asks approval[/] of {escape(e.name + given)} ({escape(e.call_id)})"
    if isinstance(e, ApprovalDecided):
        decided = "approved" if e.approved else "rejected"
        return (
            f"{head} [yellow]{decided}[/] {escape(e.call_id)}"
            + (" (always)" if e.always else "")
            + (f" by {escape(e.by)}" if e.by else "")
            + (f": {escape(_short(e.message, 200))}" if e.message else "")
        )
    if isinstance(e, RunForked):
        return (
            f"{head} [magenta]forked[/] from run {escape(e.from_run)} at step {e.at}: "
            f"{_n(e.model_calls, 'model call')} and {_n(e.tool_outputs, 'tool output')} "
            "shared from its journal"
        )
    if isinstance(e, RunQueued):
        ref = f" (agent {e.agent_ref})" if e.agent_ref else ""
        return f"{head} [yellow]queued[/] on {escape(e.queue)}{escape(ref)}, for a worker"
    if isinstance(e, RunFailed):
        error_type = (e.error_type or "error").removeprefix("builtins.")
        return f"{head} [bold red]failed[/] {escape(error_type)}" + (
            f": {escape(_short(e.error, 500))}" if e.error else ""
        )
    if isinstance(e, UnknownEvent):  # a newer version's, or a row that does not fit its type
        why = f" [dim]({escape(e.problem)})[/]" if e.problem else ""
        return f"{head} {escape(e.type)} {escape(_short(e.payload))}{why}"
    if e.TYPE.startswith("run_"):
        return f"{head} [bold]{escape(e.TYPE.removeprefix('run_'))}[/]"
    return f"{head} {escape(e.TYPE)} {escape(_short(e.to_payload()))}"


def _cancel_requested(e: CancelRequested) -> str:
    text = f"cancel requested ({e.mode}) by {e.by()}"
    if e.holder is None:
        return text + "; no process was executing the run: cancelled at once"
    return text + f"; asked its process ({Holder.of(e.holder)}) to stop it"


def _model_call(
    e: ModelCalled, head: str, in_flight: set[str], cut_off: frozenset[str] | set[str] = frozenset()
) -> str:
    details = [f"{e.usage.input_tokens} in", f"{e.usage.output_tokens} out"]
    if e.seconds is not None:
        details.append(f"{e.seconds:.3f} s")
    line = (
        f"{head} [blue]model call #{e.ordinal + 1}[/] "
        f"agent {escape(e.agent)} ({', '.join(details)})"
    )
    for call in e.calls:
        if isinstance(call, HandoffRequested):
            line += f"\n       [magenta]handoff[/] -> {escape(call.to)}"
            continue
        args = escape(
            _short(call.arguments if call.arguments is not None else call.arguments_preview)
        )
        line += f"\n       asks tool {escape(call.name)}({args})"
        if e.key_of(call) in in_flight:
            # No output journaled: the tool was running when the process stopped.
            line += "\n         [yellow]^ in flight when the run stopped; runs again on resume[/]"
        elif e.key_of(call) in cut_off:
            # No output journaled, and the run is final: the cancel stopped the tool midway.
            line += "\n         [yellow]^ in flight when the run was cancelled; never completed[/]"
    text = e.text()
    if text:
        line += f"\n       says: {escape(_short(text))}"
    return line


def _tool_call(e: ToolCalled, head: str) -> str:
    arguments = escape(_short(e.arguments if e.arguments is not None else e.arguments_preview))
    output = escape(_short(plain_value(e.output) if e.output_preview is None else e.output_preview))
    took = f"  [dim]{e.seconds or 0:.3f} s[/]"
    call = f"{head} [green]tool {escape(e.name)}[/]({arguments})"
    if e.error is not None:
        raised = f"{e.error.type}: {e.error.message}"
        return (
            f"{call} [red]raised {escape(_short(raised, 500))}[/]{took}"
            f"\n       the model was shown: {output}"
        )
    if e.sdk_error:
        return f"{call} [red]failed[/] -> {output}{took}"
    return f"{call} -> {output}{took}"


def _number(attempt: AttemptStarted | None) -> int | None:
    return None if attempt is None else attempt.attempt


def _by(attempt: AttemptStarted) -> str:
    """`[attempt 2, pid 4242]`: the attempt (and process) that did a step."""
    holder = Holder.of(attempt.owner) if attempt.owner else None
    pid = attempt.pid or (holder.pid if holder else None)
    parts = [f"attempt {attempt.attempt}" if attempt.attempt else "an attempt"]
    if pid is not None:
        parts.append(f"pid {pid}")
    return f"[{', '.join(parts)}]"


def _attempt(e: AttemptStarted | AttemptEnded) -> str:
    holder = Holder.of(e.owner) if e.owner else None
    host = e.host or (holder.host if holder else None)
    pid = e.pid or (holder.pid if holder else None)
    where = " ".join(str(x) for x in (host, None if pid is None else f"pid {pid}") if x)
    number = f"attempt {e.attempt}" if e.attempt else "an attempt"
    if isinstance(e, AttemptStarted):
        text = f"{number} started" + (f" on {where}" if where else "")
        if e.resumed:
            text += (
                f" (resumed: {_n(e.model_calls, 'model call')}, "
                f"{_n(e.tool_outputs, 'tool output')} from the journal)"
            )
        elif e.resumed is not None:
            text += " (new run)"
        return text
    text = (
        f"{number}"
        + (f" on {where}" if where else "")
        + f" ended: {_ENDED.get(e.reason, e.reason)}"
    )
    times = []
    if e.reason == "killed" and e.ended_at is not None:
        times.append(f"last sign of life {_clock(e.ended_at)}")
    if e.detected_at is not None:
        times.append(f"detected {_clock(e.detected_at)}")
    return text + (f" ({', '.join(times)})" if times else "")


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _show(
    db: str | None, run_id: str
) -> tuple[str, RunRecord, list[EventRecord], list[Event | UnknownEvent]]:
    """The run, its events and each parsed, with every value the event log holds only a
    preview of read back from the journal."""
    engine = _engine(db)
    try:
        try:
            run = await engine.get_run(run_id)
        except errors.RunNotFoundError:
            if "…" not in run_id:
                raise
            run = await _shortened(engine, run_id)
        events = await engine.list_events(run.id)
        parsed = [parse(e) for e in events]
        if any(getattr(p, "in_journal", False) for p in parsed):
            full = in_full(parsed, await engine.read_journal(run.id))
            events = [
                e if f is p else dataclasses.replace(e, payload=f.to_payload())
                for e, p, f in zip(events, parsed, full, strict=True)
            ]
            parsed = full
        return engine.describe(), run, events, parsed
    finally:
        await engine.dispose()


async def _shortened(engine: Engine, shown: str) -> RunRecord:
    """The run a shortened id copied from `runs list` (`head…tail`) names, if only one fits."""
    head, _, tail = shown.partition("…")
    fits = [
        r
        for r in await engine.list_runs(limit=None)
        if r.id.startswith(head) and r.id.endswith(tail)
    ]
    if len(fits) == 1:
        return fits[0]
    raise errors.RunNotFoundError(
        database=engine.describe(), starts=head, ends=tail, matches=len(fits)
    )


# -- runs cancel ---------------------------------------------------------------------------------


@runs_app.command("cancel")
def cancel_run(
    run_id: str,
    after_turn: Annotated[
        bool,
        typer.Option(
            "--after-turn",
            help="Let the current turn finish (its model call and tools), then stop before the "
            "next model call. Default: stop at once.",
        ),
    ] = False,
    db: DbOption = None,
    server: ServerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a run, wherever it executes.

    A run no process executes (stopped, orphaned, awaiting approval) is cancelled at once. A run
    executing in some process stops within about a second (RUNPLANE_CANCEL_POLL_SECONDS), the
    way the SDK's own cancel stops it; its caller gets RunCancelledError, or its stream ends. A
    cancelled run is final. A completed or failed run cannot be cancelled (an error, exit 2).
    """
    mode: CancelMode = "after_turn" if after_turn else "immediate"
    where, run = asyncio.run(_cancel(runs_at(db, server), run_id, mode))
    if as_json:
        typer.echo(json.dumps(_run_json(run, run_state(run)), indent=2, default=str))
        return
    console = Console(highlight=False)
    if run.status == "cancelled":
        console.print(f"run {escape(run.id)} is cancelled (in the {escape(where)})", soft_wrap=True)
        return
    holder = f" ({Holder.of(run.owner)})" if run.owner else ""
    when = "at once" if run.cancel_requested == "immediate" else "after its current turn"
    console.print(
        f"asked run {escape(run.id)} to stop {when}: its process{escape(holder)} stops it "
        "within about a second; `runplane runs show` then says cancelled",
        soft_wrap=True,
    )


async def _cancel(db: str | None, run_id: str, mode: CancelMode) -> tuple[str, RunRecord]:
    # Found first by a reader, which never creates a database: cancelling in a directory without
    # one is an error, not a new empty database. A shortened id (`runs list`) is taken too.
    reader = _engine(db)
    try:
        try:
            found = await reader.get_run(run_id)
        except errors.RunNotFoundError:
            if "…" not in run_id:
                raise
            found = await _shortened(reader, run_id)
    finally:
        await reader.dispose()
    engine = open_engine(db)
    try:
        return engine.describe(), await engine.cancel_run(found.id, mode=mode)
    finally:
        await engine.dispose()


# -- runs prune ----------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `30d`, `12h`, `90m`, `45s`, `2w` (one number, one unit);
    ValueError saying what a duration looks like."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; give a number and a unit: 30d (days), 12h (hours), "
            "90m (minutes), 45s (seconds) or 2w (weeks)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def _duration_option(value: str) -> str:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


@runs_app.command("prune")
def prune_runs(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Delete runs that finished longer ago than this: 30d, 12h, 90m, 45s, 2w.",
            callback=_duration_option,
        ),
    ],
    db: DbOption = None,
    server: ServerOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the runs that would be deleted.")
    ] = False,
) -> None:
    """Delete finished runs (completed, failed, cancelled) with their journal, events and tool
    tasks, to keep a long-lived database bounded. Runs still running, stopped or awaiting
    approval are never deleted. Deletes in small batches, so running programs keep writing."""
    before = time.time() - parse_duration(older_than)
    where, count = asyncio.run(_prune(runs_at(db, server), before, dry_run))
    cut = _when(before)[:19]
    runs = f"{count} run" + ("" if count == 1 else "s")
    if dry_run:
        typer.echo(f"would delete {runs} that finished before {cut} (in the {where}); dry run")
    else:
        typer.echo(f"deleted {runs} that finished before {cut} (in the {where})")


async def _prune(db: str | None, before: float, dry_run: bool) -> tuple[str, int]:
    reader = _engine(db)  # a missing database is an error, never a new one
    try:
        if dry_run:
            finished = [
                r
                for status in ("completed", "failed", "cancelled")
                for r in await reader.list_runs(limit=None, status=check_status(status))
            ]
            old = [r for r in finished if r.finished_at is not None and r.finished_at < before]
            return reader.describe(), len(old)
        await reader.list_runs(limit=1)
    finally:
        await reader.dispose()
    engine = open_engine(db)
    try:
        return engine.describe(), await engine.prune(finished_before=before)
    finally:
        await engine.dispose()


def demo(
    scripted: Annotated[
        bool,
        typer.Option(
            "--scripted",
            help="Play the model from a script: offline, no model runs; 5 to 20 s "
            "(two processes and a 2 s tool).",
        ),
    ] = False,
    run_id: Annotated[str | None, typer.Option(help="Name the demo's run.")] = None,
) -> None:
    """A durable run, streamed live, killed with SIGKILL mid-tool, then resumed from its journal.

    Uses OpenAI when OPENAI_API_KEY is set, otherwise a real model served locally.
    """
    from ..demo import run_demo

    run_demo(scripted=scripted, run_id=run_id)


# -- runs approvals / approve / reject -----------------------------------------------------------

CallOption = Annotated[
    str | None,
    typer.Option(
        "--call", help="The tool call's id (`runplane runs approvals RUN_ID` lists them)."
    ),
]


def _print_approvals(approvals: list[Approval], run: RunRecord | None, as_json: bool) -> None:
    if as_json:
        data: dict[str, Any] = {"approvals": [a.to_json() for a in approvals]}
        if run is not None:
            data["run"] = _run_json(run, run_state(run))
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    console = Console(highlight=False)
    if not approvals:
        console.print("no call of this run ever waited for approval")
        return
    for a in approvals:
        who = f" by {a.decided_by}" if a.decided_by else ""
        always = " (always)" if a.always else ""
        said = f": {a.message}" if a.message else ""
        rule = f" [policy {a.policy}]" if a.policy else ""
        console.print(
            escape(
                f"{a.call_id}  {a.status}{always}{who}{said}  {a.agent_name}: "
                f"{a.tool_name}({a.arguments}){rule}"
            ),
            soft_wrap=True,
        )
    if run is not None:
        pending = [a for a in approvals if a.status == "pending"]
        if run.status == "awaiting_approval" and not pending:
            console.print(
                escape(
                    f"every call of run {run.id} is decided: it continues when its program "
                    f"resumes it (Runner.resume), or in a `runplane worker` of queue "
                    f"{run.queue or 'none'} that knows agent {run.agent_name}"
                ),
                soft_wrap=True,
            )


@runs_app.command("approvals")
def list_approvals(
    run_id: str, db: DbOption = None, server: ServerOption = None, as_json: JsonOption = False
) -> None:
    """The tool calls a run waited on for approval, with their decisions and who made them."""
    where = runs_at(db, server)

    async def go() -> list[Approval]:
        engine = _engine(where)
        try:
            return await engine.list_approvals(run_id)
        finally:
            await engine.dispose()

    _print_approvals(asyncio.run(go()), None, as_json)


async def _decide(
    where: str | None,
    run_id: str,
    call_id: str | None,
    *,
    approve: bool,
    always: bool,
    message: str | None,
) -> tuple[RunRecord, list[Approval]]:
    reader = _engine(where)  # found first by a reader: never a new empty database
    try:
        await reader.get_run(run_id)
    finally:
        await reader.dispose()
    engine = open_engine(where)
    try:
        return await engine.decide(run_id, call_id, approve=approve, always=always, message=message)
    finally:
        await engine.dispose()


@runs_app.command("approve")
def approve_run(
    run_id: str,
    call: CallOption = None,
    always: Annotated[
        bool, typer.Option("--always", help="Approve this tool's later calls in the run too.")
    ] = False,
    db: DbOption = None,
    server: ServerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a waiting tool call (without --call: every pending call of the run).

    Recorded with who approved (this user and host); approving again changes nothing. The run
    then continues under its id: in its program (Runner.resume, or passing its state back in),
    or in a `runplane worker` that knows its agent once every call is decided.
    """
    run, approvals = asyncio.run(
        _decide(runs_at(db, server), run_id, call, approve=True, always=always, message=None)
    )
    _print_approvals(approvals, run, as_json)


@runs_app.command("reject")
def reject_run(
    run_id: str,
    call: Annotated[
        str,
        typer.Option(
            "--call", help="The tool call's id (`runplane runs approvals RUN_ID` lists them)."
        ),
    ],
    message: Annotated[
        str | None,
        typer.Option("--message", help="What the model is told instead of the tool's output."),
    ] = None,
    db: DbOption = None,
    server: ServerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a waiting tool call: it never runs, and the model is told `--message` (else the
    SDK's rejection text) when the run continues. A decision is final."""
    run, approvals = asyncio.run(
        _decide(runs_at(db, server), run_id, call, approve=False, always=False, message=message)
    )
    _print_approvals(approvals, run, as_json)


# -- runs replay / fork (cli/replay.py) ----------------------------------------------------------

runs_app.command("replay")(replay.replay_command)
runs_app.command("fork")(replay.fork_command)
