"""Durable runs with a `session=`, and conversations of such runs, that the crash tests kill -9
and resume; copied to a temp dir and run there (see `durable_programs.CrashProgram`).

    python program.py MODE RUN_ID PROMPT          one run with session=SQLiteSession (session.db)
    python program.py host CONVERSATION PROMPT... a host: one durable run per prompt (turn), all
                                                  sharing the conversation's DurableSession
    python program.py hostctx CONVERSATION PROMPT...  the same host on runplane.host's
                                                  HostContext: started again, it resumes the
                                                  turn cut off and goes on with the prompts after

MODE is run | run_sync | run_streamed. Every turn the model asks for tool_a, then tool_b, then
answers with their outputs. It derives its step from what its input holds since the last user
message (never from how often it was called), so the same file serves a first run and every
resume. Side effects, appended to files in the working directory: model.log gets each real model
call as `TURN.STEP`, calls.log each real tool execution; host.log each turn a host finished.
CRASH_BLOCK=TOOL:start|TOOL:mid makes that tool hang there, in the turn whose prompt is
CRASH_PROMPT (any turn when unset), for the test to kill -9.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from agents import Agent, FunctionTool, SQLiteSession, function_tool
from agents.memory import Session
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext
from runplane_durable import DurableSession, Runner, conversation_turn_id, run_id

TOOLS = ("tool_a", "tool_b")
HANG_SECONDS = 120.0
TURNS = 8  # model steps scripted per process: enough for every turn it replays or runs


def log(name: str, line: str) -> None:
    with open(name, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def respond(call: ModelCall) -> list[Any]:
    items = call.input if isinstance(call.input, list) else []
    users = [i for i, item in enumerate(items) if _field(item, "role") == "user"]
    turn = len(users)
    since = items[users[-1] + 1 :] if users else items
    outputs = [
        str(_field(i, "output")) for i in since if _field(i, "type") == "function_call_output"
    ]
    step = len(outputs)
    log("model.log", f"{turn}.{step} {os.getpid()}")
    if step < len(TOOLS):
        name = TOOLS[step]
        return [function_call(name, {"n": turn}, call_id=f"call-{name[-1]}-{turn}")]
    return [assistant_message(f"turn {turn}: " + ", ".join(outputs), item_id=f"msg-{turn}")]


def make_tool(name: str, prompt: list[str]) -> FunctionTool:
    block = os.environ.get("CRASH_BLOCK", "")
    crash_prompt = os.environ.get("CRASH_PROMPT")

    async def tool(ctx: ToolContext[Any], n: int) -> str:
        """Do one step of the job (a side effect that must not be repeated)."""
        here = crash_prompt is None or prompt[0] == crash_prompt
        if here and block == f"{name}:start":
            await _hang(name, "start")
        log("calls.log", f"{name} {ctx.tool_call_id} {os.getpid()}")
        if here and block == f"{name}:mid":
            await _hang(name, "mid")
        return f"{name.upper()}-{n}"

    return function_tool(tool, name_override=name)


def _mark_started(name: str, where: str) -> None:
    Path("started").write_text(f"{name}:{where} {os.getpid()}\n", encoding="utf-8")


async def _hang(name: str, where: str) -> None:
    _mark_started(name, where)
    await asyncio.sleep(HANG_SECONDS)


def make_agent(prompt: list[str]) -> Agent[Any]:
    return Agent(
        name="sessioned",
        instructions="Do the two steps in order.",
        model=ScriptedModel([ModelStep.respond(respond) for _ in range(TURNS)]),
        tools=[make_tool(name, prompt) for name in TOOLS],
    )


async def one_turn(mode: str, rid: str, prompt: str, session: Session) -> Any:
    agent = make_agent([prompt])
    with run_id(rid):
        if mode == "run_streamed":
            result = Runner.run_streamed(agent, prompt, session=session)
            async for _ in result.stream_events():
                pass
            return result.final_output
        if mode == "run":
            return (await Runner.run(agent, prompt, session=session)).final_output
    raise ValueError(mode)


async def host(conversation: str, prompts: list[str]) -> list[Any]:
    """A host program: each prompt one durable turn of the conversation; a host started again
    after a crash runs the same prompts, and the finished turns replay from their journals."""
    session = DurableSession(conversation)
    outputs = []
    for n, prompt in enumerate(prompts):
        output = await one_turn("run", conversation_turn_id(conversation, n), prompt, session)
        log("host.log", f"{n} {os.getpid()}")
        outputs.append(output)
    return outputs


async def host_context(conversation: str, prompts: list[str]) -> list[Any]:
    """A host on `runplane.host.HostContext` (durable backend): one turn per prompt. Started
    again after a crash, it finishes the turn cut off (`ctx.resume()`) and goes on with the
    prompts after it; the finished turns are not run again."""
    from runplane.host import HostContext, ModelOptions

    current = [prompts[0]]
    steps = [ModelStep.respond(respond) for _ in range(TURNS * len(prompts))]
    ctx = HostContext(
        system_prompt="Do the two steps in order.",
        tools=[make_tool(name, current) for name in TOOLS],
        options=ModelOptions(model=ScriptedModel(steps)),
        backend="durable",
        conversation_id=conversation,
        name="sessioned",
    )
    outputs = []
    async with ctx:
        unfinished = ctx.unfinished_turn
        if unfinished is not None:
            assert isinstance(unfinished.prompt, str)
            current[0] = unfinished.prompt
            turn = await ctx.resume()
            log("host.log", f"{unfinished.number} {os.getpid()} resumed")
            outputs.append(turn.final_output)
        for n in range(ctx.next_turn, len(prompts)):
            current[0] = prompts[n]
            turn = await ctx.run(prompts[n])
            if turn.error is not None:
                raise turn.error
            log("host.log", f"{n} {os.getpid()}")
            outputs.append(turn.final_output)
    return outputs


def main() -> None:
    mode, rid, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]
    output: Any
    if mode == "host":
        output = asyncio.run(host(rid, prompts))
    elif mode == "hostctx":
        output = asyncio.run(host_context(rid, prompts))
    elif mode == "run_sync":
        agent = make_agent(prompts)
        with run_id(rid):
            session = SQLiteSession("conversation", "session.db")
            output = Runner.run_sync(agent, prompts[0], session=session).final_output
    else:
        output = asyncio.run(
            one_turn(mode, rid, prompts[0], SQLiteSession("conversation", "session.db"))
        )
    print(json.dumps({"final_output": output}), flush=True)


if __name__ == "__main__":
    main()
