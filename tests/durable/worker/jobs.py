"""The agent the worker tests run: copied into each test's working directory as `jobs.py`, where
a program (`python program.py RUN_ID KEY`) and `runplane worker jobs` both import it.

Its model asks for step_a, then step_b, then answers; it derives each step from the tool outputs
in its input (never from how often it was called), so a first run and every resume share it.
Side effects, appended to files in the working directory: model.log gets `KEY ORDINAL PID` for
each real model call, calls.log `TOOL CALL_ID PID` for each real tool execution.
JOBS_BLOCK=step_b makes that tool write `started` (its pid) and hang; while a file `hold`
exists, every tool writes `holding` and waits for it to go.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agents import Agent, FunctionTool, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext

TOOLS = ("step_a", "step_b")


def log(name: str, line: str) -> None:
    """Append and close at once: a line written survives a kill -9 that follows."""
    with open(name, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def mark(name: str, text: str) -> None:
    """A marker for the test: whole once it ends with a newline."""
    with open(name, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def respond(call: ModelCall) -> list[Any]:
    items = call.input if isinstance(call.input, list) else []
    key = str(_field(items[0], "content")).removeprefix("job:") if items else "?"
    outputs = [
        str(_field(i, "output")) for i in items if _field(i, "type") == "function_call_output"
    ]
    ordinal = len(outputs)
    log("model.log", f"{key} {ordinal} {os.getpid()}")
    if ordinal < len(TOOLS):
        return [function_call(TOOLS[ordinal], {"n": ordinal}, call_id=f"{key}-{ordinal}")]
    return [assistant_message(f"done {key}: " + ", ".join(outputs))]


def make_tool(name: str) -> FunctionTool:
    async def tool(ctx: ToolContext[Any], n: int) -> str:
        """One step of the job (a side effect that must not repeat)."""
        if os.environ.get("JOBS_BLOCK") == name:
            mark("started", f"{os.getpid()}")
            await asyncio.sleep(120)
        while await asyncio.to_thread(os.path.exists, "hold"):
            mark("holding", f"{ctx.tool_call_id} {os.getpid()}")
            await asyncio.sleep(0.05)
        log("calls.log", f"{name} {ctx.tool_call_id} {os.getpid()}")
        return f"{name.upper()}-{n}"

    return function_tool(tool, name_override=name)


# Enough scripted steps for every run a test gives one process.
agent = Agent(
    name="jobber",
    instructions="Do both steps, then report.",
    model=ScriptedModel([ModelStep.respond(respond) for _ in range(3000)]),
    tools=[make_tool(name) for name in TOOLS],
)
not_an_agent = "jobber"
