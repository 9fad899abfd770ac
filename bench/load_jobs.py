"""The agent of server_load.py's fault sections: `runplane worker load_jobs` and the client
processes import it (the bench copies it into their working directory).

Its model derives each answer from the run's input (never from how often it was called), so a
first execution and a resume after a kill share it: BENCH_TURNS turns (default 20), each but the
last a call of the tool `step`, which waits BENCH_TOOL_MS ms (default 50: a run lasts long enough
to be killed in the middle) and appends `RUN_KEY ORDINAL PID` to BENCH_CALLS (default calls.log)
as each real execution starts, so the bench can count the tools run again after a kill.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agents import Agent, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call

TURNS = int(os.environ.get("BENCH_TURNS", "20"))
TOOL_SECONDS = float(os.environ.get("BENCH_TOOL_MS", "50")) / 1000
CALLS = os.environ.get("BENCH_CALLS", "calls.log")
STEPS = int(os.environ.get("BENCH_STEPS", "40000"))  # model calls one process may make


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def respond(call: ModelCall) -> list[Any]:
    items = call.input if isinstance(call.input, list) else []
    key = str(_field(items[0], "content")).removeprefix("job:") if items else "?"
    ordinal = sum(1 for i in items if _field(i, "type") == "function_call_output")
    if ordinal < TURNS - 1:
        return [function_call("step", {"key": key, "n": ordinal}, call_id=f"{key}-{ordinal}")]
    return [assistant_message("done")]


def _ran(key: str, n: int) -> None:
    """One line, one write, closed at once: whole after a kill (microseconds: not threaded)."""
    with open(CALLS, "a", encoding="utf-8") as f:
        f.write(f"{key} {n} {os.getpid()}\n")


@function_tool
async def step(key: str, n: int) -> int:
    """One step of the job: a line saying it started, then a wait (the tool's work)."""
    _ran(key, n)
    await asyncio.sleep(TOOL_SECONDS)
    return n + 1


agent = Agent(
    name="load_jobs",
    model=ScriptedModel([ModelStep.respond(respond) for _ in range(STEPS)]),
    tools=[step],
)
