"""The processes of tests/durable/worker/test_partition.py (a worker cut off from its server):
a remote tool that waits at a gate, a run that calls it, a worker that serves it, and two
helpers for the `runplane worker` scenario:

    python -c 'from support.partition_programs import main; main()' worker URL LEASE
    python -c 'from support.partition_programs import main; main()' run URL RUN_ID
    python -c 'from support.partition_programs import main; main()' start KEY
    python -c 'from support.partition_programs import main; main()' cli ARGS...

`start` starts the run `started-KEY` of the worker tests' `jobs:agent` (`Runner.start`, where
RUNPLANE_SERVER_URL says; `jobs` from the working directory); `cli` is the `runplane` command,
with `jobs` imported first.

Each prints `ready PID` once it has imported everything; with START (env) naming a file, it then
waits until that file exists before it does anything, so a test starts its processes at once
(an import costs seconds on a loaded machine) and lets each go when its turn comes.

Every execution of the tool appends `start CALL_ID PID` and, when it returns, `end CALL_ID PID`
to the file LEDGER names (env), closed at once. In a process whose GATE (env) names a file, the
tool waits until that file exists before it returns; elsewhere it returns at once. The run's
model asks for the tool once, then answers with its output (`result: CITY by PID`), and the run
prints its outcome as JSON.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import time
from typing import Any

from agents import Agent
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext
from runplane_durable import DurableBackend, Runner, remote, remote_tools, run_id
from runplane_durable.engine import open_engine
from runplane_durable.worker.tool_tasks import serve_tool_tasks

QUEUE = "partition-tests"


def _ledger(line: str) -> None:
    with open(os.environ["LEDGER"], "a", encoding="utf-8") as f:
        f.write(f"{line}\n")


@remote(queue=QUEUE, retry_delay=0.05, send_context=False)
async def gated(ctx: ToolContext[None], city: str) -> str:
    """Wait for the gate file (GATE, in this process only), then say who ran it."""
    _ledger(f"start {ctx.tool_call_id} {os.getpid()}")
    gate = os.environ.get("GATE")
    while gate and not await asyncio.to_thread(os.path.exists, gate):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    _ledger(f"end {ctx.tool_call_id} {os.getpid()}")
    return f"{city} by {os.getpid()}"


def _respond(call: ModelCall) -> list[Any]:
    """Ask for the tool until its output is in the input (a resumed run asks only for the
    answer), then answer with it."""
    items = call.input if isinstance(call.input, list) else []
    outputs = [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
    if not outputs:
        return [function_call("gated", {"city": "Oslo"}, call_id="call-1")]
    return [assistant_message(f"result: {outputs[-1]['output']}")]


async def _run(url: str, rid: str) -> None:
    model = ScriptedModel([ModelStep.respond(_respond) for _ in range(2)])
    agent = Agent(name="partition-caller", model=model, tools=[gated])
    backend = DurableBackend(open_engine(url))
    with run_id(rid):
        result = await backend.run(agent, "go")
    print(json.dumps({"final_output": result.final_output, "pid": os.getpid()}), flush=True)
    await backend.engine.dispose()


async def _worker(url: str, lease_seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    engine = open_engine(url)
    print("serving", os.getpid(), flush=True)
    await serve_tool_tasks(
        engine, remote_tools(QUEUE), queue=QUEUE, stop=stop, lease_seconds=lease_seconds
    )
    await engine.dispose()


async def _start(key: str) -> None:
    handle = await Runner.start("jobs:agent", f"job:{key}", run_id=f"started-{key}")
    print(handle.run_id, flush=True)


def _ready() -> None:
    """Say so, then wait for the START file, if there is one."""
    print("ready", os.getpid(), flush=True)
    start = os.environ.get("START")
    while start and not os.path.exists(start):
        time.sleep(0.01)


def main() -> None:
    # As `runplane worker` logs: its warnings, with the time, on stderr.
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING)
    mode = sys.argv[1]
    if mode == "cli":
        from runplane.cli import main as cli

        importlib.import_module("jobs")  # the worker tests' agents, from the working directory
        _ready()
        cli(sys.argv[2:])
        return
    if mode == "start":
        importlib.import_module("jobs")
        _ready()
        asyncio.run(_start(sys.argv[2]))
        return
    url = sys.argv[2]
    _ready()
    if mode == "worker":
        asyncio.run(_worker(url, float(sys.argv[3])))
    else:
        asyncio.run(_run(url, sys.argv[3]))
