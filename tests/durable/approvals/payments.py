"""The agent the cross-process approval tests run: copied into each test's working directory as
`payments.py`, where `program.py` and `runplane worker payments` both import it.

Its model asks for `pay` (which needs approval) and, once the call's output is in its input,
answers with that output; it derives each step from its input, never from how often it was
called, so a first run and every resume share it. Each real model call appends `model PID` to
model.log, each real payment `pay CALL_ID PID` to paid.log: a side effect that must not repeat.
PAY_BLOCK=1 makes `pay` write `started` and hang before paying (the test kills it there).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agents import Agent, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext


def log(name: str, line: str) -> None:
    with open(name, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def respond(call: ModelCall) -> list[Any]:
    log("model.log", f"model {os.getpid()}")
    items = call.input if isinstance(call.input, list) else []
    outputs = [
        str(_field(i, "output")) for i in items if _field(i, "type") == "function_call_output"
    ]
    if not outputs:
        return [function_call("pay", {"amount": 5}, call_id="p1")]
    return [assistant_message("done: " + outputs[-1])]


@function_tool(needs_approval=True)
async def pay(ctx: ToolContext[Any], amount: int) -> str:
    """Pay an amount (needs a person's approval)."""
    if os.environ.get("PAY_BLOCK"):  # the test kills the process here: the payment never ran
        await asyncio.to_thread(log, "started", f"{os.getpid()}")
        await asyncio.sleep(120)
    log("paid.log", f"pay {ctx.tool_call_id} {os.getpid()}")
    return f"paid {amount}"


agent = Agent(
    name="payer",
    instructions="Pay what is asked.",
    model=ScriptedModel([ModelStep.respond(respond) for _ in range(100)]),
    tools=[pay],
)
