"""A durable run that the crash tests kill -9 and resume; copied to a temp dir and run there.

    python program.py MODE RUN_ID        (MODE: run | run_sync | run_streamed)

The model asks for tool_a, tool_b, tool_c in turn, then answers with their outputs. It derives
its step from the tool outputs already in its input, never from how often it was called, so the
same file serves a first run and every resume (a replayed model call never reaches it).

Side effects, appended to files in the working directory, where `.runplane/` also lands:
model.log gets each real model call's ordinal, calls.log each real tool execution, stream.log
each streamed event. CRASH_BLOCK=TOOL:start|TOOL:mid makes that tool write `started` and hang,
at its very start (before its side effect) or midway (after it), for the test to kill -9.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from agents import Agent, FunctionTool, function_tool
from agents.result import RunResultBase
from agents.stream_events import StreamEvent
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext
from runplane_durable import Runner, run_id

TOOLS = ("tool_a", "tool_b", "tool_c")
PROMPT = "Call tool_a, tool_b and tool_c, then report their outputs."
TOOL_OUTPUT = "function_call_output"
HANG_SECONDS = 120.0  # far beyond any test's wait: the test kills the process long before


def log(name: str, line: str) -> None:
    """Append and close at once: a line written survives the kill -9 that follows."""
    with open(name, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def respond(call: ModelCall) -> list[Any]:
    """Step N of the script, where N is the number of tool outputs the model has seen."""
    items = call.input if isinstance(call.input, list) else []
    outputs = [str(_field(i, "output")) for i in items if _field(i, "type") == TOOL_OUTPUT]
    ordinal = len(outputs)
    log("model.log", f"{ordinal} {os.getpid()}")
    if ordinal < len(TOOLS):
        name = TOOLS[ordinal]
        return [function_call(name, {"n": ordinal}, call_id=f"call-{name[-1]}")]
    return [assistant_message("done: " + ", ".join(outputs))]


def mark_started(name: str, where: str) -> None:
    """Tell the test which tool hangs, where, and in which process (the newline ends it)."""
    Path("started").write_text(f"{name}:{where} {os.getpid()}\n", encoding="utf-8")


async def hang(name: str, where: str) -> None:
    mark_started(name, where)
    await asyncio.sleep(HANG_SECONDS)


def make_tool(name: str) -> FunctionTool:
    block = os.environ.get("CRASH_BLOCK", "")

    async def tool(ctx: ToolContext[Any], n: int) -> str:
        """Do one step of the job (a side effect that must not be repeated)."""
        if block == f"{name}:start":
            await hang(name, "start")
        log("calls.log", f"{name} {ctx.tool_call_id} {os.getpid()}")
        if block == f"{name}:mid":
            await hang(name, "mid")
        return f"{name.upper()}-{n}"

    return function_tool(tool, name_override=name)


def describe(event: StreamEvent) -> str:
    if event.type == "raw_response_event":
        return f"raw {event.data.type}"
    if event.type == "run_item_stream_event":
        raw = event.item.raw_item
        return f"item {event.name} {_field(raw, 'call_id') or ''}".rstrip()
    return f"agent {event.new_agent.name}"


async def streamed(agent: Agent[Any], rid: str) -> RunResultBase:
    with run_id(rid):
        result = Runner.run_streamed(agent, PROMPT)
    async for event in result.stream_events():  # consumed live, one line per event
        log("stream.log", describe(event))
    return result


def main() -> None:
    mode, rid = sys.argv[1], sys.argv[2]
    agent = Agent(
        name="crasher",
        instructions="Do the three steps in order.",
        model=ScriptedModel([ModelStep.respond(respond) for _ in range(len(TOOLS) + 1)]),
        tools=[make_tool(name) for name in TOOLS],
    )
    result: RunResultBase
    if mode == "run_streamed":
        result = asyncio.run(streamed(agent, rid))
    else:
        with run_id(rid):
            if mode == "run":
                result = asyncio.run(Runner.run(agent, PROMPT))
            else:
                result = Runner.run_sync(agent, PROMPT)
    print(json.dumps({"final_output": result.final_output}), flush=True)


if __name__ == "__main__":
    main()
