"""`runplane demo`: one agent with one tool, streamed live, on any backend.

With OPENAI_API_KEY set it talks to OpenAI; otherwise (or with --scripted) the SDK's ScriptedModel
plays the model, and the output says so, so nobody mistakes a script for a model.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from agents import Agent, ModelSettings, function_tool
from agents.models.interface import Model
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from openai.types.responses import ResponseTextDeltaEvent
from rich.console import Console

from .facade import runner
from .registry import Registry

__all__ = ["ORDERS", "build_agent", "run_demo", "scripted_model"]

ORDERS: dict[str, dict[str, str]] = {
    "42": {"status": "shipped", "carrier": "DHL", "eta": "Thursday"},
    "7": {"status": "processing", "carrier": "-", "eta": "next week"},
}
QUESTION = "Where is my order 42?"


@function_tool
def order_status(order_id: str) -> dict[str, str]:
    """Look up an order's shipping status by its id."""
    return ORDERS.get(order_id.strip().lstrip("#"), {"status": "unknown order"})


def scripted_model() -> ScriptedModel:
    """The model's part, written down: ask for the tool, then answer from its output."""
    answer = "Your order 42 has shipped with DHL and should arrive on Thursday."
    return ScriptedModel(
        [
            ModelStep(
                output=[function_call("order_status", {"order_id": "42"}, call_id="call_demo_1")],
                usage=Usage(requests=1, input_tokens=60, output_tokens=12, total_tokens=72),
            ),
            ModelStep(
                output=[assistant_message(answer)],
                usage=Usage(requests=1, input_tokens=95, output_tokens=18, total_tokens=113),
            ),
        ]
    )


def build_agent(model: Model | str | None) -> Agent[Any]:
    return Agent(
        name="Order desk",
        instructions="You answer questions about orders. Use the order_status tool; be brief.",
        tools=[order_status],
        model=model,
        model_settings=ModelSettings(temperature=0),
    )


def run_demo(*, backend: str, scripted: bool, registry: Registry | None = None) -> None:
    console = Console(highlight=False)
    use_openai = bool(os.environ.get("OPENAI_API_KEY")) and not scripted
    Runner = runner(backend, registry=registry)
    model: Model | str | None = None if use_openai else scripted_model()
    source = (
        "OpenAI (OPENAI_API_KEY is set)"
        if use_openai
        else "a SCRIPTED model (no OPENAI_API_KEY, or --scripted): replies are canned"
    )
    console.print(f"[bold]runplane demo[/] on backend [cyan]{backend}[/]")
    console.print(f"model: {source}")
    console.print(f"user: {QUESTION}\n")

    async def stream() -> None:
        started = time.perf_counter()
        result = Runner.run_streamed(build_agent(model), QUESTION)
        console.print("[dim]run_streamed returned at once; events follow live:[/]")
        speaking = False
        async for event in result.stream_events():
            if isinstance(event, RawResponsesStreamEvent) and isinstance(
                event.data, ResponseTextDeltaEvent
            ):
                if not speaking:
                    console.print("  [blue]assistant:[/] ", end="")
                    speaking = True
                console.print(event.data.delta, end="")
            elif isinstance(event, RunItemStreamEvent):
                if event.name == "tool_called":
                    raw: Any = event.item.raw_item
                    console.print(f"  [yellow]tool call[/] {raw.name}({raw.arguments})")
                elif event.name == "tool_output":
                    console.print(f"  [green]tool output[/] {getattr(event.item, 'output', '')}")
        usage = result.context_wrapper.usage
        elapsed = time.perf_counter() - started
        console.print(
            f"\n\nfinal output: {result.final_output}\n"
            f"{usage.requests} model calls, {usage.total_tokens} tokens, {elapsed:.2f} s"
        )

    asyncio.run(stream())
