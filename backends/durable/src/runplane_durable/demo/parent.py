"""The demo's narrator: starts the run in a child process, kills it, resumes it, explains."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..engine import open_engine
from ..errors import DurableError, RunNotFoundError
from ..local.database import ENV_DATABASE_URL, describe, resolve_url
from ..records import JournalRecord, RunRecord
from .agent import QUESTION
from .command import runplane_command
from .local_model import local_model_server

__all__ = ["ModelSource", "run_demo"]

KILL_AFTER_TOOL_START_S = 0.5
CHILD_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "openai", "local" or "scripted"
    label: str
    base_url: str | None = None
    model: str | None = None

    def args(self) -> list[str]:
        args = ["--source", self.kind]
        if self.base_url:
            args += ["--base-url", self.base_url]
        if self.model:
            args += ["--model", self.model]
        return args


@contextlib.contextmanager
def _model_source(console: Console, scripted: bool) -> Iterator[ModelSource]:
    if scripted:
        yield ModelSource(
            "scripted", "a SCRIPTED model (--scripted): replies are canned, no model runs"
        )
        return
    if os.environ.get("OPENAI_API_KEY"):
        yield ModelSource("openai", "OpenAI (OPENAI_API_KEY is set)", model="gpt-4.1-mini")
        return
    server_class = local_model_server()
    console.print(
        "[bold]model[/]: no OPENAI_API_KEY, so a real model runs locally "
        "(Qwen2.5-Coder 0.5B under llama.cpp; the first time this builds and downloads it)"
    )
    with server_class(progress=lambda line: console.print(f"  [dim]{line}[/]")) as server:
        yield ModelSource(
            "local", f"the local model at {server.base_url}", server.base_url, server.model
        )


def _spawn(source: ModelSource, rid: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runplane_durable.demo.child", "--run-id", rid, *source.args()],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1"},
    )


@dataclass
class Attempt:
    """What one child process did, as observed: the narration states only these facts."""

    pid: int
    tool_runs: int = 0  # times the tool really started in this process (its own report)
    killed: bool = False  # SIGKILLed by the demo while its tool ran (confirmed by the exit status)
    done: dict[str, Any] | None = None  # the child's last event when it finished the run


def _relay(console: Console, child: subprocess.Popen[str], *, kill_on_tool: bool) -> Attempt:
    """Render the child's events live; with kill_on_tool, SIGKILL it once its tool really runs."""
    assert child.stdout is not None
    attempt = Attempt(pid=child.pid)
    speaking = False
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    for line in child.stdout:
        if time.monotonic() > deadline:
            child.kill()
            raise DurableError("the demo's run took longer than 10 minutes; stopped it")
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            console.print(f"  [dim]{escape(line.rstrip())}[/]")
            continue
        kind = event.get("type")
        if kind == "text":
            if not speaking:
                console.print("  [blue]assistant:[/] ", end="")
                speaking = True
            console.print(escape(event["delta"]), end="")
            continue
        if speaking:
            console.print()  # end the assistant's line; what follows gets its own
            speaking = False
        if kind == "tool_called":
            console.print(f"  [yellow]tool call[/] {escape(event['name'])}({event['arguments']})")
        elif kind == "tool_started":
            attempt.tool_runs += 1
            console.print(f"  [dim]{event['name']} is running (the warehouse is slow)...[/]")
            if kill_on_tool and not attempt.killed:
                time.sleep(KILL_AFTER_TOOL_START_S)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.wait()
                attempt.killed = child.returncode == -signal.SIGKILL
                if attempt.killed:
                    console.print(
                        f"  [bold red]killed[/] the process (pid {child.pid}) with SIGKILL, "
                        f"{KILL_AFTER_TOOL_START_S} s into {event['name']}"
                    )
                    return attempt
        elif kind == "tool_output":
            console.print(f"  [green]tool output[/] {escape(str(event['output']))}")
        elif kind == "error":
            raise DurableError(f"the demo's run failed: {event['error']}")
        elif kind == "done":
            attempt.done = dict(event)
            child.wait()
            return attempt
    child.wait()
    raise DurableError(f"the demo's run process exited with status {child.returncode}")


def _read(rid: str) -> tuple[RunRecord | None, list[JournalRecord]]:
    """The run's record and journal as the engine holds them; (None, []) for an unknown id."""

    async def read() -> tuple[RunRecord | None, list[JournalRecord]]:
        engine = open_engine()
        try:
            return await engine.get_run(rid), await engine.read_journal(rid)
        except RunNotFoundError:
            return None, []
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _counts(journal: list[JournalRecord]) -> tuple[int, int]:
    """(model responses, tool outputs) the journal holds."""
    models = sum(1 for entry in journal if entry.kind == "model")
    return models, len(journal) - models


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _describe_prior(prior: RunRecord | None, journal: list[JournalRecord]) -> str:
    if prior is None:
        return "new: no run with this id in the journal yet"
    models, tools = _counts(journal)
    if prior.status == "completed":
        state = "finished, so running it again replays its stored result"
    elif prior.status == "cancelled":
        state = "cancelled, so it cannot run again: use a new run id"
    else:
        state = "not finished, so this run resumes it"
    return (
        f"already in the journal, status {prior.status!r} ({_plural(models, 'model response')}, "
        f"{_plural(tools, 'tool output')}): {state}"
    )


def _explain_kill(
    console: Console, prior_journal: list[JournalRecord], first: Attempt, rid: str
) -> None:
    stopped, journal = _read(rid)
    assert stopped is not None
    models, tools = _counts(journal)
    new_models = models - _counts(prior_journal)[0]
    new_tools = tools - _counts(prior_journal)[1]
    holder = (
        "no process holds it"
        if stopped.owner is None
        else f"its lease still names the killed process ({stopped.owner}), which is dead, "
        "so the next process may take it over at once"
    )
    console.print(
        f"\n[bold]2. The process is gone.[/] In the journal: {_plural(models, 'model response')}"
        f", {_plural(tools, 'tool output')}. Status {stopped.status!r}: {holder}."
    )
    lost = first.tool_runs - new_tools
    committed = (
        f"The killed process committed {_plural(new_models, 'model response')} and "
        f"{_plural(new_tools, 'tool output')} before it died"
    )
    if lost > 0:
        committed += (
            "; the output of the tool it was running was never journaled, so the next process "
            "has to run that tool again"
        )
    console.print(f"  {committed}.\n")


def _explain_finish(
    console: Console, rid: str, prior: RunRecord | None, first: Attempt, last: Attempt
) -> None:
    finished, journal = _read(rid)
    assert finished is not None
    assert last.done is not None
    models, tools = _counts(journal)
    asked = int(last.done["live_model_calls"])
    label = "the resumed process" if first.killed else "this process"
    console.print(
        f"\n[bold]{'4' if first.killed else '2'}. Done[/] (status {finished.status!r}). "
        f"Final output: {escape(str(last.done['final_output']))}"
    )
    console.print(
        f"  The run holds {_plural(models, 'model response')} and {_plural(tools, 'tool output')}; "
        f"{label} asked the model for {asked} of them, the other {models - asked} came from the "
        "journal."
    )
    if first.killed and last.tool_runs:
        console.print(
            f"  The tool that was running at the kill ran again ({_plural(last.tool_runs, 'time')}"
            "): a tool in flight at a crash runs at least once, so make it idempotent."
        )
    elif last.tool_runs:
        console.print(f"  The tool ran {_plural(last.tool_runs, 'time')} in {label}.")
    else:
        console.print(f"  No tool ran in {label}: every tool output came from the journal.")
    if not first.killed:
        if prior is not None and prior.status == "completed":
            why = "the run had already finished, so its replay had no tool to run"
        elif first.tool_runs:
            why = "the tool finished before the kill landed"
        else:
            why = "no tool started in this process"
        console.print(
            f"  Nothing was killed: {why}. Run the demo without --run-id, or with a new id, "
            "to see a run killed and resumed."
        )


def run_demo(*, scripted: bool, run_id: str | None = None) -> None:
    console = Console(highlight=False)
    rid = run_id or f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    url = resolve_url()
    prior, prior_journal = _read(rid)
    console.print("[bold]runplane demo[/]: an Agents SDK run that survives kill -9\n")
    console.print(f"backend  durable (journal in the {escape(describe(url))})")
    with _model_source(console, scripted) as source:
        console.print(f"model    {source.label}")
        console.print(f"run id   {escape(rid)}: {_describe_prior(prior, prior_journal)}\n")

        console.print("[bold]1. Start the run[/] in a child process, streaming live:")
        console.print(f"  user: {QUESTION}")
        first = _relay(console, _spawn(source, rid), kill_on_tool=True)
        last = first
        if first.killed:
            _explain_kill(console, prior_journal, first, rid)
            console.print("[bold]3. Run the same program again[/] with the same run id:")
            last = _relay(console, _spawn(source, rid), kill_on_tool=False)
    _explain_finish(console, rid, prior, first, last)
    hint = "" if ENV_DATABASE_URL not in os.environ else f"  (database from ${ENV_DATABASE_URL})"
    runplane = runplane_command()
    # Printed whole on their own lines (no wrapping): they are meant to be pasted.
    console.print(f"\nSee every step of the run:{hint}")
    console.print(f"  {runplane} runs show {shlex.quote(rid)}", markup=False, soft_wrap=True)
    console.print("List all runs:")
    console.print(f"  {runplane} runs list", markup=False, soft_wrap=True)
