"""The demo's narrator: starts the run in a child process, kills it, resumes it, explains."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from ..errors import DurableError
from ..local import LocalEngine
from ..records import RunRecord
from ..store.database import ENV_DATABASE_URL, describe, resolve_url

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
    from runplane.localmodel import LocalModelServer

    console.print(
        "[bold]model[/]: no OPENAI_API_KEY, so a real model runs locally "
        "(Qwen2.5-Coder 0.5B under llama.cpp; the first time this builds and downloads it)"
    )
    with LocalModelServer(progress=lambda line: console.print(f"  [dim]{line}[/]")) as server:
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


def _relay(
    console: Console, child: subprocess.Popen[str], *, kill_on_tool: bool
) -> dict[str, Any] | None:
    """Render the child's events live; with kill_on_tool, SIGKILL it inside its tool call."""
    assert child.stdout is not None
    speaking = False
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    for line in child.stdout:
        if time.monotonic() > deadline:
            child.kill()
            raise DurableError("the demo's run took longer than 10 minutes; stopped it")
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            console.print(f"  [dim]{line.rstrip()}[/]")
            continue
        kind = event.get("type")
        if kind == "text":
            if not speaking:
                console.print("  [blue]assistant:[/] ", end="")
                speaking = True
            console.print(event["delta"], end="")
        elif kind in ("tool_called", "tool_output") and speaking:
            console.print()  # end the assistant's line; its next message gets its own label
            speaking = False
        if kind == "tool_called":
            console.print(f"  [yellow]tool call[/] {event['name']}({event['arguments']})")
            if kill_on_tool:
                console.print("  [dim]the warehouse is slow; the tool is running...[/]")
                time.sleep(KILL_AFTER_TOOL_START_S)
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                console.print(
                    f"  [bold red]killed[/] the process (pid {child.pid}) with SIGKILL, "
                    "in the middle of the tool call"
                )
                return None
        elif kind == "tool_output":
            console.print(f"  [green]tool output[/] {event['output']}")
        elif kind == "error":
            raise DurableError(f"the demo's run failed: {event['error']}")
        elif kind == "done":
            if speaking:
                console.print()
            return dict(event)
    child.wait()
    raise DurableError(f"the demo's run process exited with status {child.returncode}")


def _record(rid: str) -> RunRecord:
    async def read() -> RunRecord:
        engine = LocalEngine()
        try:
            return await engine.get_run(rid)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def run_demo(*, scripted: bool, run_id: str | None = None) -> None:
    console = Console(highlight=False)
    rid = run_id or f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    url = resolve_url()
    console.print("[bold]runplane demo[/]: an Agents SDK run that survives kill -9\n")
    console.print(f"backend  durable (journal in the {describe(url)})")
    with _model_source(console, scripted) as source:
        console.print(f"model    {source.label}")
        console.print(f"run id   {rid}\n")

        console.print("[bold]1. Start the run[/] in a child process, streaming live:")
        console.print("  user: Where is my order 42?")
        first = _spawn(source, rid)
        _relay(console, first, kill_on_tool=True)

        stopped = _record(rid)
        holder = (
            "no process holds it"
            if stopped.owner is None
            else f"its lease still names the killed process ({stopped.owner}), which is dead, "
            "so the next process may take it over at once"
        )
        console.print(
            f"\n[bold]2. The process is gone.[/] In the journal: {stopped.model_calls} model "
            f"call(s), {stopped.tool_calls} tool output(s). Status {stopped.status!r}: {holder}."
        )
        console.print(
            "  The model's answer (asking for the tool) was committed before the tool started; "
            "the tool's output never was.\n"
        )

        console.print("[bold]3. Run the same program again[/] with the same run id:")
        second = _spawn(source, rid)
        done = _relay(console, second, kill_on_tool=False)
    assert done is not None
    finished = _record(rid)
    asked = done["live_model_calls"]
    console.print(
        f"\n[bold]4. Done[/] (status {finished.status!r}). Final output: {done['final_output']}\n"
        f"  The run made {finished.model_calls} model calls; the resumed process asked the model "
        f"for {asked} of them, the other {finished.model_calls - asked} came from the journal.\n"
        "  The tool that was running at the kill ran again: in-flight tools run at least once."
    )
    hint = "" if ENV_DATABASE_URL not in os.environ else f"  (database from ${ENV_DATABASE_URL})"
    console.print(
        f"\nSee every step of the run:  [bold]runplane runs show {rid}[/]{hint}\n"
        "List all runs:              [bold]runplane runs list[/]"
    )
