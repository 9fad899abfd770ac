"""Remote tools, a durable run that calls them and a worker that serves them, as real processes.

    python -c 'from support.remote_programs import main; main()' worker URL QUEUE LEASE
    python -c 'from support.remote_programs import main; main()' run URL RUN_ID TOOL ARGS_JSON

Started by tests/durable/worker/test_tool_tasks.py (never as `-m`, so the classes a task sends
are named `support.remote_programs:...` in every process). Every tool execution appends
`start TOOL CALL_ID PID` (and `end ...` when it returns) to the file LEDGER names (env), closed
at once so a line survives the kill that follows. The run's model asks for TOOL once, then
answers with the tool's output; it derives its step from its input, so a resumed run (which
replays the first model call) asks only for the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from typing import Any

import pydantic
from agents import Agent
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext
from runplane_durable import DurableBackend, remote, remote_tools, run_id
from runplane_durable.engine import open_engine
from runplane_durable.worker.tool_tasks import serve_tool_tasks

QUEUE = "remote-tests"
TOOL_OUTPUT = "function_call_output"


class Prefs(pydantic.BaseModel):
    units: str
    cities: list[str]


@dataclasses.dataclass
class Deps:
    """The run's context: a dataclass holding a pydantic model, sent to the worker."""

    user: str
    prefs: Prefs


class CallReport(pydantic.BaseModel):
    """What the worker's ToolContext held, returned as a pydantic model (stored by its type)."""

    tool_name: str
    call_id: str
    arguments: str
    context_type: str
    context: Deps
    pid: int


def ledger(line: str) -> None:
    with open(os.environ["LEDGER"], "a", encoding="utf-8") as f:
        f.write(f"{line}\n")


@remote(queue=QUEUE)
async def inspect_call(ctx: ToolContext[Deps], city: str) -> CallReport:
    """Report the tool context this call ran with."""
    ledger(f"start inspect_call {ctx.tool_call_id} {os.getpid()}")
    return CallReport(
        tool_name=ctx.tool_name,
        call_id=ctx.tool_call_id,
        arguments=ctx.tool_arguments,
        context_type=f"{type(ctx.context).__module__}.{type(ctx.context).__qualname__}",
        context=ctx.context,
        pid=os.getpid(),
    )


@remote(queue=QUEUE, retry_delay=0.05)
async def slow(ctx: ToolContext[Deps], city: str) -> str:
    """Take SLOW_SECONDS (env), blocking the worker's event loop as CPU-bound work does."""
    ledger(f"start slow {ctx.tool_call_id} {os.getpid()}")
    time.sleep(float(os.environ.get("SLOW_SECONDS", "1")))  # noqa: ASYNC251 - on purpose
    ledger(f"end slow {ctx.tool_call_id} {os.getpid()}")
    return f"{city} by {os.getpid()}"


@remote(queue=QUEUE, max_attempts=2, retry_delay=0.05)
async def doomed(ctx: ToolContext[Deps], city: str) -> str:
    """Kill the worker running it, every time."""
    ledger(f"start doomed {ctx.tool_call_id} {os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)
    return "never"


def _respond(tool: str, arguments: dict[str, Any]) -> Any:
    def respond(call: ModelCall) -> list[Any]:
        items = call.input if isinstance(call.input, list) else []
        outputs = [i for i in items if isinstance(i, dict) and i.get("type") == TOOL_OUTPUT]
        if not outputs:
            return [function_call(tool, arguments, call_id="call-1")]
        return [assistant_message(f"result: {outputs[-1]['output']}")]

    return respond


TOOLS = {"inspect_call": inspect_call, "slow": slow, "doomed": doomed}
CONTEXT = Deps(user="ann", prefs=Prefs(units="metric", cities=["Zürich", "Oslo"]))


async def _run(url: str, rid: str, tool: str, arguments: dict[str, Any]) -> None:
    agent = Agent(
        name="remote-caller",
        model=ScriptedModel([ModelStep.respond(_respond(tool, arguments)) for _ in range(2)]),
        tools=[TOOLS[tool]],
    )
    backend = DurableBackend(open_engine(url), lease_seconds=float(os.environ.get("LEASE", "30")))
    with run_id(rid):
        result = await backend.run(agent, "go", context=CONTEXT)
    print(json.dumps({"final_output": result.final_output, "pid": os.getpid()}), flush=True)
    await backend.engine.dispose()


async def _worker(url: str, queue: str, lease_seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    engine = open_engine(url)
    print("serving", os.getpid(), flush=True)
    await serve_tool_tasks(
        engine, remote_tools(queue), queue=queue, stop=stop, lease_seconds=lease_seconds
    )
    await engine.dispose()


def main() -> None:
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "worker":
        asyncio.run(_worker(url, sys.argv[3], float(sys.argv[4])))
    else:
        asyncio.run(_run(url, sys.argv[3], sys.argv[4], json.loads(sys.argv[5])))
