"""Durable runs for the web UI's tests, made by a real program behind a `runplane server`.

    python ui_program.py SCENARIO RUN_ID

RUNPLANE_SERVER_URL names the server. The scripted model asks for `lookup`, then answers;
every model call reports 12 input and 7 output tokens. UI_GATE, when set, is a file the tool
waits for (at most two minutes) before it returns, so a test can watch the run mid-way and then
let it finish. Scenarios:

- `steps`: agent `support` (or UI_AGENT), a plain lookup and answer;
- `xss`: the same, with an XSS payload (`XSS`) in the input, the tool's arguments, its output and
  the model's message;
- `approval`: agent `approver`, whose tool needs approval: the run stops awaiting approval and
  the program exits. `runplane worker ui_program:approver` finishes it once it is approved.

The outcome is printed as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agents import Agent, Usage, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from runplane_durable import Runner, run_id

XSS = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
GATE_SECONDS = 120.0
USAGE = Usage(requests=1, input_tokens=12, output_tokens=7, total_tokens=19)


def _answered(call: ModelCall) -> bool:
    items = call.input if isinstance(call.input, list) else []
    return any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in items)


def _model(payload: str) -> ScriptedModel:
    """Asks for lookup until the tool answered, then answers: right whichever call it gets, so
    a worker resuming the run (replaying the first call) gets the answer."""

    async def respond(call: ModelCall) -> Any:
        if _answered(call):
            return [assistant_message(f"The order has shipped.{payload}")]
        return [function_call("lookup", {"order": f"42{payload}"}, call_id="call-lookup")]

    return ScriptedModel([ModelStep.respond(respond) for _ in range(8)], default_usage=USAGE)


async def _wait_for_gate() -> None:
    gate = os.environ.get("UI_GATE")
    if not gate:
        return
    deadline = time.monotonic() + GATE_SECONDS
    # Polled on the loop, not in a thread: a cancelled run must stop waiting at once.
    while not Path(gate).exists() and time.monotonic() < deadline:  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.05)


def _tool(payload: str, *, needs_approval: bool = False) -> Any:
    @function_tool(name_override="lookup", needs_approval=needs_approval)
    async def lookup(order: str) -> str:
        """Look an order up by its id."""
        await _wait_for_gate()
        return f"order {order}: shipped with DHL{payload}"

    return lookup


def _agent(name: str, payload: str = "", *, needs_approval: bool = False) -> Agent[Any]:
    return Agent(
        name=name,
        instructions="Answer questions about orders.",
        model=_model(payload),
        tools=[_tool(payload, needs_approval=needs_approval)],
    )


# The agents a worker imports to finish runs: an approved one (`runplane worker
# ui_program:approver`), or a killed program's (`ui_program:support`).
approver = _agent("approver", needs_approval=True)
support = _agent("support")


def main() -> None:
    scenario, rid = sys.argv[1], sys.argv[2]
    if scenario == "approval":
        agent = approver
    else:
        payload = XSS if scenario == "xss" else ""
        agent = _agent(os.environ.get("UI_AGENT", "support"), f" {payload}" if payload else "")
    prompt = "Where is order 42?" + (f" {XSS}" if scenario == "xss" else "")
    with run_id(rid):
        result = Runner.run_sync(agent, prompt)
    print(
        json.dumps(
            {
                "final_output": result.final_output,
                "interruptions": [
                    getattr(i.raw_item, "call_id", None) for i in result.interruptions
                ],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
