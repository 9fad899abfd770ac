"""`runplane chat`: a terminal chat on the host context, with rich live output.

Streamed text, tool calls and their outputs, usage per turn, and approvals asked inline (y/n),
on any backend and any OpenAI-compatible endpoint. Prompts are read line by line from stdin, so
it works piped as well as in a terminal; `/exit` or end of input ends the chat.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from agents.tool import Tool
from openai import AsyncOpenAI
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from ..bridge import (
    ApprovalDecided,
    ApprovalRequested,
    HandedOff,
    HostEvent,
    ReasoningDone,
    RunCancelled,
    RunFailed,
    RunFinished,
    TextDelta,
    TextDone,
    ToolCalled,
    ToolOutput,
)
from ..endpoint import ENV_API, ENV_API_KEY, NO_KEY
from .context import HostContext
from .options import HostSetupError, ModelOptions

__all__ = ["ChatConfig", "ChatView", "load_tools", "run_chat"]

OUTPUT_CHARS = 400
"""How much of a tool's output the chat shows (the model gets all of it)."""


@dataclass(frozen=True)
class ChatConfig:
    """The `runplane chat` options."""

    backend: str | None = None
    model: str | None = None
    base_url: str | None = None
    api: str | None = None
    system: str = "You are a helpful assistant."
    policy: str | None = None
    tools: Sequence[str] = ()
    conversation: str | None = None
    max_turns: int = 10


def load_tools(spec: str) -> list[Tool]:
    """The tools `MODULE:ATTR` names: one SDK tool, or a list/tuple of them."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise HostSetupError(
            f"--tools {spec!r}: give MODULE:ATTR, for example myapp.tools:TOOLS (a tool made with "
            "@function_tool, or a list of them)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HostSetupError(f"--tools {spec!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise HostSetupError(f"--tools {spec!r}: module {module_name!r} has no {attr!r}") from None
    tools = list(value) if isinstance(value, (list, tuple)) else [value]
    for tool in tools:
        if not isinstance(tool, Tool):
            raise HostSetupError(
                f"--tools {spec!r}: {type(tool).__name__} is not an Agents SDK tool (make it "
                "with @function_tool)"
            )
    return tools


class ChatView:
    """Renders host events: streamed text live, then tools, approvals, usage, errors."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None
        self._text = ""

    def _settle(self, text: str | None = None) -> None:
        """End the live text (with its final version, when known)."""
        if self._live is not None:
            self._live.update(self._render(text if text is not None else self._text))
            self._live.stop()
            self._live = None
        self._text = ""

    @staticmethod
    def _render(text: str) -> Text:
        return Text.assemble(("agent> ", "bold green"), text)

    def __call__(self, event: HostEvent) -> None:
        if isinstance(event, TextDelta):
            if self._live is None:
                self._live = Live(
                    self._render(""), console=self.console, refresh_per_second=15, transient=False
                )
                self._live.start()
            self._text += event.delta
            self._live.update(self._render(self._text))
            return
        if isinstance(event, TextDone):
            if self._live is None:
                self.console.print(self._render(event.text))
            self._settle(event.text)
            return
        self._settle()
        show = self.console.print
        if isinstance(event, ToolCalled):
            show(f"[cyan]tool[/] {escape(event.tool_name)}({escape(event.arguments)})")
        elif isinstance(event, ToolOutput):
            output = event.output
            if len(output) > OUTPUT_CHARS:
                output = output[:OUTPUT_CHARS] + f"... ({len(event.output)} characters)"
            show(f"[cyan]  -> {escape(event.tool_name)}:[/] {escape(output)}")
        elif isinstance(event, ReasoningDone) and event.text:
            show(f"[dim]thinking: {escape(event.text)}[/]")
        elif isinstance(event, HandedOff):
            show(f"[magenta]handoff[/] {escape(event.source)} -> {escape(event.target)}")
        elif isinstance(event, ApprovalRequested):
            show(
                f"[yellow]approval needed[/] {escape(event.tool_name)}({escape(event.arguments)})"
                f" [{escape(event.call_id)}]"
            )
        elif isinstance(event, ApprovalDecided):
            verdict = "approved" if event.approved else "rejected"
            reason = f": {escape(event.message)}" if event.message else ""
            show(
                f"[yellow]{verdict}[/] {escape(event.tool_name)} [{escape(event.call_id)}]{reason}"
            )
        elif isinstance(event, RunFinished):
            u = event.usage
            show(
                f"[dim]usage: {u.requests} model call(s), {u.input_tokens} in, "
                f"{u.output_tokens} out, {u.total_tokens} total[/]"
            )
        elif isinstance(event, RunFailed):
            show(
                f"[bold red]turn failed:[/] {escape(event.error_type)}: {escape(event.message)} "
                "(the conversation goes on)"
            )
        elif isinstance(event, RunCancelled):
            show("[bold red]turn cancelled[/] (the conversation goes on)")


async def _read(console: Console, prompt: str) -> str | None:
    """One line from stdin (None at its end), after showing `prompt`."""
    console.print(prompt, end="", markup=True, highlight=False)
    line: str = await asyncio.to_thread(sys.stdin.readline)
    if not line:
        console.print()
        return None
    if not console.is_terminal:
        console.print(escape(line.rstrip("\n")), highlight=False)  # the transcript shows it
    return line.rstrip("\n")


def _client(config: ChatConfig) -> AsyncOpenAI | None:
    if config.base_url is None:
        return None
    key = os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY") or NO_KEY
    return AsyncOpenAI(base_url=config.base_url, api_key=key)


async def run_chat(config: ChatConfig, console: Console | None = None) -> None:
    """The chat loop: prompts from stdin until `/exit` or end of input."""
    console = console or Console(highlight=False)
    tools = [tool for spec in config.tools for tool in load_tools(spec)]
    client = _client(config)
    api = config.api if client is not None else None
    if config.api is not None and client is None:
        os.environ[ENV_API] = config.api  # the backend's provider speaks it (runplane.endpoint)
    view = ChatView(console)
    ctx = HostContext(
        system_prompt=config.system,
        tools=tools,
        options=ModelOptions(model=config.model),
        client=client,
        api=api,
        authority=config.policy,
        backend=config.backend,
        conversation_id=config.conversation,
        on_event=view,
        max_turns=config.max_turns,
        name="chat",
    )
    async with ctx:
        model = config.model or "default model"
        console.print(
            f"[dim]runplane chat: backend {escape(ctx.runner.selected_backend())}, model "
            f"{escape(str(model))}, conversation {escape(str(ctx.conversation_id))}; /exit ends[/]"
        )
        while True:
            line = await _read(console, "[bold blue]you> [/]")
            if line is None or line.strip() in ("/exit", "/quit"):
                break
            if not line.strip():
                continue
            turn = await ctx.run(line)
            while turn.interruptions:
                approve: list[str] = []
                reject: dict[str, str | None] = {}
                for item in turn.interruptions:
                    answer = await _read(
                        console,
                        f"[yellow]approve {escape(str(item.tool_name))}"
                        f"({escape(item.arguments or '')})? [y/n] [/]",
                    )
                    verdict, _, message = (answer or "n").strip().partition(" ")
                    if verdict.lower() in ("y", "yes"):
                        approve.append(str(item.call_id))
                    else:
                        reject[str(item.call_id)] = message.strip() or None
                turn = await ctx.decide(approve, reject)
    if client is not None:
        await client.close()


def main(config: ChatConfig) -> None:
    """Run the chat to its end (Ctrl-C ends it too)."""
    try:
        asyncio.run(run_chat(config))
    except KeyboardInterrupt:
        sys.exit(130)
