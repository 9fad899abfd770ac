"""A durable run that the kill harness kills -9 at random moments; copied to a temp dir, run there.

    python program.py MODE RUN_ID        (MODE: run | run_sync | run_streamed)

A planner asks for two tools in one turn (the SDK runs them side by side), then hands off to a
writer whose `output_type` is a pydantic model; the writer answers with that structured output.
The model derives its step from the input (how many tool outputs it has seen), never from how
often it was called, so one file serves a first run and every resume. The database is the one
`RUNPLANE_DATABASE_URL` names.

Everything real is appended to a file and closed at once, so it survives the kill that follows:
model.log gets `ORDINAL PID` for each real model call, effects.log `CALL_ID PID` for each tool's
side effect. `begin` gets the pid once the program is about to start the run, `end` once the
run has returned: the harness draws its kill moments between the two. Model calls and tools take
a little time, so each boundary between steps is a moment such a kill can land near.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pydantic
from agents import Agent, FunctionTool, function_tool
from agents.result import RunResultBase
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext
from runplane_durable import Runner, run_id

PROMPT = "Fetch a and b, then hand off to the writer."
TOOLS = {"fetch_a": "call-a", "fetch_b": "call-b"}
MODEL_SECONDS = 0.05  # each live model call
TOOL_SECONDS = 0.1  # before and again after each tool's side effect


class Report(pydantic.BaseModel):
    a: str
    b: str


def log(name: str, line: str) -> None:
    """Append and close at once: a line written survives the kill -9 that follows."""
    with open(name, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def respond(call: ModelCall) -> list[Any]:
    """Ordinal 0 asks for both tools, 1 hands off, 2 (the writer) gives the report."""
    items = call.input if isinstance(call.input, list) else []
    outputs = [_field(i, "output") for i in items if _field(i, "type") == "function_call_output"]
    ordinal = {0: 0, 2: 1, 3: 2}[len(outputs)]  # the handoff adds an output of its own
    log("model.log", f"{ordinal} {os.getpid()}")
    time.sleep(MODEL_SECONDS)  # the model is thinking: the call is in flight
    if ordinal == 0:
        return [function_call(name, {"key": name[-1]}, call_id=cid) for name, cid in TOOLS.items()]
    if ordinal == 1:
        return [function_call("transfer_to_writer", {}, call_id="call-h")]
    a, b = (str(o) for o in outputs[:2])
    return [assistant_message(Report(a=a, b=b).model_dump_json())]


def make_tool(name: str) -> FunctionTool:
    async def tool(ctx: ToolContext[Any], key: str) -> str:
        """Fetch one value (a side effect that must not be repeated once its output is kept)."""
        await asyncio.sleep(TOOL_SECONDS)
        log("effects.log", f"{ctx.tool_call_id} {os.getpid()}")
        await asyncio.sleep(TOOL_SECONDS)
        return f"value-{key}"

    return function_tool(tool, name_override=name)


def build() -> Agent[Any]:
    model = ScriptedModel([ModelStep.respond(respond) for _ in range(3)])
    writer = Agent(
        name="writer",
        instructions="Write the report.",
        model=model,
        output_type=Report,
    )
    return Agent(
        name="planner",
        instructions="Fetch both values, then hand off.",
        model=model,
        tools=[make_tool(name) for name in TOOLS],
        handoffs=[writer],
    )


async def streamed(agent: Agent[Any], rid: str) -> RunResultBase:
    with run_id(rid):
        result = Runner.run_streamed(agent, PROMPT)
    async for _ in result.stream_events():
        pass
    return result


def main() -> None:
    mode, rid = sys.argv[1], sys.argv[2]
    agent = build()
    Path("begin").write_text(f"{os.getpid()}\n", encoding="utf-8")
    result: RunResultBase
    if mode == "run_streamed":
        result = asyncio.run(streamed(agent, rid))
    else:
        with run_id(rid):
            if mode == "run":
                result = asyncio.run(Runner.run(agent, PROMPT))
            else:
                result = Runner.run_sync(agent, PROMPT)
    Path("end").write_text(f"{os.getpid()}\n", encoding="utf-8")
    output = result.final_output
    assert isinstance(output, Report), type(output)
    print(json.dumps({"final_output": output.model_dump()}), flush=True)


if __name__ == "__main__":
    main()
