"""`runplane runs list` and `runplane runs show RUN_ID`: a run's full history, from any shell."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .identity import tool_key
from .records import EventRecord, JournalRecord, RunRecord
from .store.settings import ENV_DATABASE_URL

# The database layer (`local`, SQLAlchemy) is imported by the commands that read it, not here:
# `runplane --help` imports this module. Nothing here imports the Agents SDK.

__all__ = ["demo", "plain_value", "runs_app"]

runs_app = typer.Typer(
    help="Durable runs: list them, show one's full history.", no_args_is_help=True
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help=f"Database URL or SQLite path (default: ${ENV_DATABASE_URL}, "
        "else .runplane/runplane.db).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def plain_value(encoded: Any) -> Any:
    """A journal-encoded value as plain data, for people (no class is imported)."""
    if not isinstance(encoded, dict):
        return encoded
    if "json" in encoded:
        return encoded["json"]
    for key in ("list", "tuple"):
        if key in encoded:
            return [plain_value(v) for v in encoded[key]]
    if "dict" in encoded:
        return {k: plain_value(v) for k, v in encoded["dict"].items()}
    if "data" in encoded:
        return encoded["data"]
    if "display" in encoded:
        return encoded["display"]
    return encoded


def _run_json(run: RunRecord) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["final_output"] = plain_value(run.final_output)
    return data


@runs_app.command("list")
def list_runs(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Runs, newest first: id, status, agent, started, turns, tokens."""
    runs = asyncio.run(_list(db, limit, status))
    if as_json:
        typer.echo(json.dumps([_run_json(r) for r in runs], indent=2, default=str))
        return
    table = Table(title=f"runplane runs ({len(runs)})")
    for column, justify in [
        ("id", "left"),
        ("status", "left"),
        ("agent", "left"),
        ("started", "left"),
        ("turns", "right"),
        ("tokens", "right"),
    ]:
        table.add_column(column, justify=justify, no_wrap=column in ("id", "started"))  # type: ignore[arg-type]
    for r in runs:
        table.add_row(
            escape(r.id),
            r.status,
            escape(r.agent_name),
            _when(r.created_at),
            str(r.model_calls),
            str(r.total_tokens),
        )
    Console().print(table)


async def _list(db: str | None, limit: int, status: str | None) -> list[RunRecord]:
    from .local import LocalEngine

    engine = LocalEngine(db)
    try:
        return await engine.list_runs(limit=limit, status=status)
    finally:
        await engine.dispose()


@runs_app.command("show")
def show_run(run_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Everything a run did: model calls with usage, tool calls with arguments and outputs,
    handoffs, approvals, and its final output or error."""
    run, events = asyncio.run(_show(db, run_id))
    if as_json:
        typer.echo(
            json.dumps(
                {"run": _run_json(run), "steps": [dataclasses.asdict(e) for e in events]},
                indent=2,
                default=str,
            )
        )
        return
    console = Console(highlight=False)
    console.print(f"[bold]run[/] {escape(run.id)}   [bold]status[/] {run.status}")
    console.print(
        f"agent {escape(run.agent_name)}   started {_when(run.created_at)}   "
        f"finished {_when(run.finished_at)}"
    )
    console.print(
        f"{run.model_calls} model calls, {run.tool_calls} tool calls, {run.requests} requests, "
        f"{run.input_tokens} in + {run.output_tokens} out = {run.total_tokens} tokens"
    )
    console.print(f"input: {escape(_short(run.input))}\n")
    finished_tools = {e.payload.get("key") for e in events if e.type == "tool_call"}
    for e in events:
        console.print(_describe(e, finished_tools, run.status))
    if run.status == "completed":
        console.print(
            f"\n[bold green]final output[/]: {escape(_short(plain_value(run.final_output), 2000))}"
        )
    elif run.status == "failed":
        console.print(
            f"\n[bold red]error[/] {escape(run.error_type or '')}: {escape(run.error or '')}"
        )
    elif run.status == "running" and run.owner is None:
        console.print("\n[yellow]interrupted[/]: run it again with the same run id to resume it.")
    elif run.status == "running":
        console.print(f"\n[yellow]running[/] in {escape(run.owner or '?')}")


def _describe(e: EventRecord, finished_tools: set[Any], status: str) -> str:
    p = e.payload
    head = f"[dim]{e.seq:>4} {_when(e.created_at)}[/]"
    if e.type == "model_call":
        u = p.get("usage", {})
        line = (
            f"{head} [blue]model call #{p.get('ordinal', 0) + 1}[/] "
            f"agent {escape(str(p.get('agent')))}"
            f" ({u.get('input_tokens', 0)} in, {u.get('output_tokens', 0)} out)"
        )
        for call in p.get("calls", []):
            if call["type"] == "handoff":
                line += f"\n       [magenta]handoff[/] -> {escape(str(call['to']))}"
            else:
                args = escape(_short(call.get("arguments", call.get("arguments_preview"))))
                line += f"\n       asks tool {escape(call['name'])}({args})"
                key = tool_key(p.get("ordinal", 0) + 1, str(call.get("call_id")))
                if status != "completed" and key not in finished_tools:
                    # No output journaled: the tool was running when the process stopped.
                    line += "  [yellow]<- in flight when the run stopped; runs again on resume[/]"
        texts = [
            c.get("text", "")
            for item in p.get("output", [])
            if item.get("type") == "message"
            for c in item.get("content", [])
            if c.get("type") == "output_text"
        ]
        if texts:
            line += f"\n       says: {escape(_short(' '.join(texts)))}"
        return line
    if e.type == "tool_call":
        arguments = p.get("arguments", p.get("arguments_preview"))
        output = plain_value(p["output"]) if "output" in p else p.get("output_preview")
        return (
            f"{head} [green]tool {escape(str(p.get('name')))}[/]"
            f"({escape(_short(arguments))}) -> "
            f"{escape(_short(output))}  [dim]{p.get('seconds', 0):.3f} s[/]"
        )
    if e.type == "run_awaiting_approval":
        return f"{head} [yellow]awaiting approval[/]"
    if e.type.startswith("run_"):
        return f"{head} [bold]{escape(e.type.removeprefix('run_'))}[/]"
    return f"{head} {escape(e.type)} {escape(_short(p))}"


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _show(db: str | None, run_id: str) -> tuple[RunRecord, list[EventRecord]]:
    from .local import LocalEngine

    engine = LocalEngine(db)
    try:
        run = await engine.get_run(run_id)
        events = await engine.list_events(run_id)
        if any(_in_journal(e.payload) for e in events):
            events = _in_full(events, await engine.read_journal(run_id))
        return run, events
    finally:
        await engine.dispose()


def _in_journal(payload: dict[str, Any]) -> bool:
    calls = payload.get("calls") or []
    return any(key.endswith("_in_journal") for key in payload) or any(
        "arguments_in_journal" in call for call in calls
    )


def _in_full(events: list[EventRecord], journal: list[JournalRecord]) -> list[EventRecord]:
    """The events with every value too large for the event log read back from the journal.

    A step's event keeps only a preview of a large tool output, arguments or model output; the
    journal holds each once, in full.
    """
    models = {e.key: e.payload for e in journal if e.kind == "model"}
    tools = {e.key: e.payload for e in journal if e.kind == "tool"}
    full = []
    for event in events:
        payload = event.payload
        if _in_journal(payload):
            if event.type == "tool_call":
                payload = _restored(payload, tools.get(str(payload.get("key"))) or {})
            elif event.type == "model_call":
                response = (models.get(str(payload.get("ordinal"))) or {}).get("response") or {}
                payload = _restored(payload, response)
                arguments = {
                    item.get("call_id"): item.get("arguments")
                    for item in response.get("output") or []
                    if item.get("type") == "function_call"
                }
                payload["calls"] = [
                    _restored(call, {"arguments": arguments.get(call.get("call_id"))})
                    for call in payload.get("calls") or []
                ]
            event = dataclasses.replace(event, payload=payload)
        full.append(event)
    return full


def _restored(payload: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """`payload` with each `NAME_in_journal` value taken from `source[NAME]`, where it is."""
    restored = dict(payload)
    for flag in [key for key in payload if key.endswith("_in_journal")]:
        name = flag.removesuffix("_in_journal")
        if source.get(name) is not None:
            restored[name] = source[name]
            del restored[flag]
            restored.pop(f"{name}_preview", None)
    return restored


def demo(
    scripted: Annotated[
        bool,
        typer.Option(
            "--scripted", help="Play the model from a script: instant, offline, no model runs."
        ),
    ] = False,
    run_id: Annotated[str | None, typer.Option(help="Name the demo's run.")] = None,
) -> None:
    """A durable run, streamed live, killed with SIGKILL mid-tool, then resumed from its journal.

    Uses OpenAI when OPENAI_API_KEY is set, otherwise a real model served locally.
    """
    from .demo import run_demo

    run_demo(scripted=scripted, run_id=run_id)
