"""`runplane chat`: a terminal chat on the host context, with rich live output.

Streamed text, tool calls and their outputs, usage per turn, and approvals asked inline (y/n),
on any backend and any OpenAI-compatible endpoint. Prompts are read line by line from stdin, so
it works piped as well as in a terminal; `/exit` or end of input ends the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from agents import ModelSettings
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
    ModelUsage,
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
from .options import ModelOptions
from .tools import load_tools

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


class ChatView:
    """Renders host events: streamed text (live in a terminal, as it comes when piped), then
    tool calls and outputs, approvals, usage, errors."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None
        self._streaming = False  # text is being written, piped: a newline ends it
        self._text = ""

    @staticmethod
    def _render(text: str) -> Text:
        return Text.assemble(("agent> ", "bold green"), text)

    def _settle(self, text: str | None = None) -> None:
        """End the streamed text (with its final version, when known)."""
        if self._live is not None:
            self._live.update(self._render(text if text is not None else self._text))
            self._live.stop()
            self._live = None
        elif self._streaming:
            self.console.out("")  # the newline that ends the streamed line
        self._streaming = False
        self._text = ""

    def _delta(self, delta: str) -> None:
        self._text += delta
        if self.console.is_terminal:
            if self._live is None:
                self._live = Live(
                    self._render(""), console=self.console, refresh_per_second=15, transient=False
                )
                self._live.start()
            self._live.update(self._render(self._text))
            return
        if not self._streaming:
            self.console.print(self._render(""), end="")
            self._streaming = True
        self.console.out(delta, end="", highlight=False)

    def __call__(self, event: HostEvent) -> None:
        if isinstance(event, TextDelta):
            self._delta(event.delta)
            return
        if isinstance(event, TextDone):
            if self._live is None and not self._streaming:  # no deltas came: all of it now
                self.console.print(self._render(event.text))
            self._settle(event.text)
            return
        if isinstance(event, ModelUsage):
            return  # per call, between a message's text and its end: the turn's totals are shown
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
                f" {escape(f'[{event.call_id}]')}"
            )
        elif isinstance(event, ApprovalDecided):
            verdict = "approved" if event.approved else "rejected"
            reason = f": {escape(event.message)}" if event.message else ""
            show(
                f"[yellow]{verdict}[/] {escape(event.tool_name)} {escape(f'[{event.call_id}]')}"
                f"{reason}"
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


def _stdin_line() -> asyncio.Future[str]:
    """The next line of stdin, read in a daemon thread: Ctrl-C while waiting for it must end the
    process, which an executor thread blocked in readline() would keep alive."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str) -> None:
        if not future.done():
            future.set_result(line)

    def read() -> None:
        line = sys.stdin.readline()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, name="runplane-chat-stdin", daemon=True).start()
    return future


async def _read(console: Console, prompt: str) -> str | None:
    """One line from stdin (None at its end), after showing `prompt`."""
    console.print(prompt, end="", markup=True, highlight=False)
    line = await _stdin_line()
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
        # Usage in every streamed Chat Completions answer: the SDK asks for it only from OpenAI.
        options=ModelOptions(
            model=config.model, settings=ModelSettings(include_usage=True) if client else None
        ),
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
                        f"({escape(item.arguments or '')})? {escape('[y/n]')} [/]",
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
