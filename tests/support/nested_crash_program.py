"""A durable run whose tool is another agent (`Agent.as_tool`); the crash tests kill -9 it.

    python program.py MODE RUN_ID        (MODE is ignored: the run is always run_sync)

Only `from runplane_durable import Runner`: no runplane.install. The boss delegates one job to
the worker (a nested run); the worker calls step_1, then step_2, then reports their outputs. Each
model derives its step from the tool outputs in its input, so the same file serves a first run
and every resume. model.log gets `AGENT ORDINAL PID` per real model call, calls.log
`TOOL CALL_ID PID` per real tool execution; CRASH_BLOCK=TOOL:start|TOOL:mid makes that tool
write `started` and hang, for the test to kill -9.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from agents import Agent, FunctionTool, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext
from runplane_durable import Runner, run_id

HANG_SECONDS = 120.0


def log(name: str, line: str) -> None:
    """Append and close at once: a line written survives the kill -9 that follows."""
    with open(name, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _outputs(call: ModelCall) -> list[str]:
    items = call.input if isinstance(call.input, list) else []
    return [
        str(item.get("output") if isinstance(item, dict) else getattr(item, "output", None))
        for item in items
        if (item.get("type") if isinstance(item, dict) else getattr(item, "type", None))
        == "function_call_output"
    ]


def worker_step(call: ModelCall) -> list[Any]:
    outputs = _outputs(call)
    log("model.log", f"worker {len(outputs)} {os.getpid()}")
    if len(outputs) < 2:
        name = f"step_{len(outputs) + 1}"
        return [function_call(name, {}, call_id=f"call-s{len(outputs) + 1}")]
    return [assistant_message(" ".join(outputs))]


def boss_step(call: ModelCall) -> list[Any]:
    outputs = _outputs(call)
    log("model.log", f"boss {len(outputs)} {os.getpid()}")
    if not outputs:
        return [function_call("delegate", {"input": "the job"}, call_id="call-delegate")]
    return [assistant_message("boss: " + outputs[0])]


def make_tool(name: str) -> FunctionTool:
    block = os.environ.get("CRASH_BLOCK", "")

    async def tool(ctx: ToolContext[Any]) -> str:
        """One step of the worker's job (a side effect that must not be repeated)."""
        if block == f"{name}:start":
            await hang(name, "start")
        log("calls.log", f"{name} {ctx.tool_call_id} {os.getpid()}")
        if block == f"{name}:mid":
            await hang(name, "mid")
        return name.upper().replace("_", "-")

    return function_tool(tool, name_override=name)


def mark_started(name: str, where: str) -> None:
    """Tell the test which tool hangs, where, and in which process (the newline ends it)."""
    Path("started").write_text(f"{name}:{where} {os.getpid()}\n", encoding="utf-8")


async def hang(name: str, where: str) -> None:
    mark_started(name, where)
    await asyncio.sleep(HANG_SECONDS)


def main() -> None:
    rid = sys.argv[2]
    worker = Agent(
        name="worker",
        model=ScriptedModel([ModelStep.respond(worker_step) for _ in range(3)]),
        tools=[make_tool("step_1"), make_tool("step_2")],
    )
    boss = Agent(
        name="boss",
        model=ScriptedModel([ModelStep.respond(boss_step) for _ in range(2)]),
        tools=[worker.as_tool(tool_name="delegate", tool_description="Delegate the job.")],
    )
    with run_id(rid):
        result = Runner.run_sync(boss, "Get the job done.")
    print(json.dumps({"final_output": result.final_output}), flush=True)


if __name__ == "__main__":
    main()
