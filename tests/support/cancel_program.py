"""A durable run that another process cancels; run as a real process by test_cancel.py.

    python cancel_program.py MODE RUN_ID        (MODE: run | run_sync | run_streamed)

The database is CANCEL_DB (an http:// URL: the runplane server keeping the runs). The model
asks for `work(n=0)`, then `work(n=1)`, then answers.
CANCEL_BLOCK says what is slow, each writing `started` (with the pid) when it gets there:
`tool` (work(n=0) hangs), `model` (the second model call hangs) or `slow_tool` (work(n=0) waits
until the test writes `proceed` in the working directory, once its cancel "after_turn" is
recorded, then SLOW_SECONDS more, in which the run learns of the request, as it does within a
second; then it returns). model.log gets a line per
real model call, calls.log `start N` and `done N` per tool execution. The outcome is printed as
one JSON line: {"outcome": "completed" | "stream_ended" | "error", ...}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from agents import Agent, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, DurableError, run_id
from runplane_durable.engine import open_engine

PROMPT = "Do the work twice, then say done."
HANG_SECONDS = 120.0  # far beyond any test's wait: the cancel comes long before
SLOW_SECONDS = 2.0
BLOCK = os.environ.get("CANCEL_BLOCK", "")


def log(name: str, line: str) -> None:
    with open(name, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def mark_started(what: str) -> None:
    Path("started").write_text(f"{what} {os.getpid()}\n", encoding="utf-8")


def _outputs(call: ModelCall) -> int:
    items = call.input if isinstance(call.input, list) else []
    return sum(1 for i in items if isinstance(i, dict) and i.get("type") == "function_call_output")


async def respond(call: ModelCall) -> Any:
    done = _outputs(call)
    log("model.log", f"{done} {os.getpid()}")
    if BLOCK == "model" and done == 1:
        mark_started("model")
        await asyncio.sleep(HANG_SECONDS)
    if done < 2:
        return [function_call("work", {"n": done}, call_id=f"call-{done}")]
    return [assistant_message("done")]


@function_tool
async def work(n: int) -> str:
    """Do one piece of work."""
    log("calls.log", f"start {n}")
    if n == 0 and BLOCK == "tool":
        mark_started("tool")
        await asyncio.sleep(HANG_SECONDS)
    if n == 0 and BLOCK == "slow_tool":
        mark_started("slow_tool")
        for _ in range(int(HANG_SECONDS / 0.05)):  # until the test says so
            if await asyncio.to_thread(Path("proceed").exists):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(SLOW_SECONDS)
    log("calls.log", f"done {n}")
    return f"worked {n}"


def _error(exc: BaseException) -> dict[str, Any]:
    fields = exc.fields if isinstance(exc, DurableError) else {}
    return {"outcome": "error", "type": type(exc).__name__, "message": str(exc), "fields": fields}


async def streamed(backend: DurableBackend, agent: Agent[Any], rid: str) -> dict[str, Any]:
    with run_id(rid):
        result = backend.run_streamed(agent, PROMPT)
    events = 0
    async for _ in result.stream_events():
        events += 1
    return {
        "outcome": "stream_ended",
        "final_output": result.final_output,
        "is_complete": result.is_complete,
        "events": events,
    }


def main() -> None:
    mode, rid = sys.argv[1], sys.argv[2]
    backend = DurableBackend(open_engine(os.environ["CANCEL_DB"]))  # a server's URL too
    agent = Agent(
        name="worker",
        instructions="Work.",
        model=ScriptedModel([ModelStep.respond(respond) for _ in range(3)]),
        tools=[work],
    )
    outcome: dict[str, Any]
    try:
        if mode == "run_streamed":
            outcome = asyncio.run(streamed(backend, agent, rid))
        elif mode == "run":
            with run_id(rid):
                result = asyncio.run(backend.run(agent, PROMPT))
            outcome = {"outcome": "completed", "final_output": result.final_output}
        else:
            with run_id(rid):
                result = backend.run_sync(agent, PROMPT)
            outcome = {"outcome": "completed", "final_output": result.final_output}
    except Exception as exc:
        outcome = _error(exc)
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
