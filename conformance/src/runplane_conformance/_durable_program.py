"""The durability profile's program: a scripted run that can SIGKILL itself at a chosen step.

A `Script` is plain data (model turns asking for tool calls, a handoff, then a reply); `build`
turns it into agents with a `ScriptedModel` and async function tools. The model answers from the
conversation it is sent (how many turns it already holds), never from how often it was called,
so a resumed run that replays its recorded turns gets the right answer for the next one. Every
real model call and every tool's side effect appends a line `WHAT PID` to a ledger file, closed at
once, so it survives the kill that may follow; the suite then counts what ran in which process.

`execute(job)` is what one child process of the fork server does: read a run's history, run the
script on the named backend under a run id (killing itself with SIGKILL at the job's kill
point), and write what it observed as JSON. It runs in the child, never in pytest's process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from agents import Agent, ModelSettings, RunContextWrapper, RunHooks, Tool, function_tool
from agents.items import ModelResponse
from agents.result import RunResultBase
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.testing.model import ModelCall
from agents.tool_context import ToolContext
from agents.usage import Usage

__all__ = [
    "VARIANTS",
    "Call",
    "KillPoint",
    "Script",
    "Turn",
    "execute",
    "kill_points",
]

ToolName = Literal["fetch", "store"]
KillKind = Literal["model", "tool_start", "tool_mid", "tool_end"]
Variant = Literal["instructions", "tool_parameters", "model_settings", "input"]
VARIANTS: tuple[Variant, ...] = ("instructions", "tool_parameters", "model_settings", "input")
"""How a divergent resume changes the program: what the run recorded no longer matches."""

MODEL_LOG = "model.log"
TOOL_LOG = "tools.log"
INSTRUCTIONS = "Use the tools as asked, then answer."


@dataclasses.dataclass(frozen=True)
class Call:
    """One function call a model turn asks for: a tool and its argument."""

    tool: ToolName
    key: str


@dataclasses.dataclass(frozen=True)
class Turn:
    """One model response: tool calls (side by side when several), a handoff, or the reply.

    Every id in it carries the turn's number (`t2-c1`, `t3-h`, `t4-m`), which is how the model
    and the kill hooks tell the turns apart.
    """

    calls: tuple[Call, ...] = ()
    handoff: bool = False
    text: str | None = None
    input_tokens: int = 3
    output_tokens: int = 2


@dataclasses.dataclass(frozen=True)
class Script:
    """Turns ending with a reply (a turn with neither calls nor a handoff); the run's input."""

    turns: tuple[Turn, ...]
    input: str = "Go."

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Script:
        turns = tuple(
            Turn(**{**t, "calls": tuple(Call(**c) for c in t["calls"])}) for t in data["turns"]
        )
        return cls(turns=turns, input=data["input"])

    def call_ids(self, turn: int) -> list[str]:
        """The tool call ids model turn `turn` (1-based) asks for."""
        return [call_id(turn, j) for j in range(1, len(self.turns[turn - 1].calls) + 1)]

    def describe(self) -> str:
        parts = []
        for n, t in enumerate(self.turns, 1):
            if t.handoff:
                parts.append(f"{n}: handoff")
            elif t.calls:
                calls = ", ".join(f"{c.tool}({c.key})" for c in t.calls)
                parts.append(f"{n}: {calls}")
            else:
                parts.append(f"{n}: reply {t.text!r}")
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class KillPoint:
    """Where the killed process dies: after model call `turn` ("model"), or at a tool call:
    as it starts ("tool_start"), after its side effect but before it returns ("tool_mid",
    in flight), or once it returned ("tool_end")."""

    kind: KillKind
    turn: int
    call_id: str | None = None

    def describe(self) -> str:
        if self.kind == "model":
            return f"after model call {self.turn}"
        where = {"tool_start": "as", "tool_mid": "in the middle of", "tool_end": "after"}
        return f"{where[self.kind]} tool call {self.call_id} (turn {self.turn})"


def call_id(turn: int, j: int) -> str:
    return f"t{turn}-c{j}"


def kill_points(script: Script) -> list[KillPoint]:
    """Every step boundary of the script, in the order the run reaches them."""
    points: list[KillPoint] = []
    for turn in range(1, len(script.turns) + 1):
        points.append(KillPoint("model", turn))
        for cid in script.call_ids(turn):
            for kind in ("tool_start", "tool_mid", "tool_end"):
                points.append(KillPoint(kind, turn, cid))
    return points


def _log(path: Path, line: str) -> None:
    """Append and close at once: the line survives a SIGKILL that follows."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{line} {os.getpid()}\n")


def _call_id(context: object) -> object:
    return getattr(context, "tool_call_id", None)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _turn_of_id(value: Any) -> int | None:
    if isinstance(value, str) and value.startswith("t") and "-" in value:
        head = value[1:].split("-", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def _turns_in(items: Any) -> int:
    """How many model turns the conversation `items` already holds."""
    seen: set[int] = set()
    for item in items if isinstance(items, list) else []:
        if _field(item, "type") in ("function_call", "message"):
            for value in (_field(item, "call_id"), _field(item, "id")):
                turn = _turn_of_id(value)
                if turn is not None:
                    seen.add(turn)
    return len(seen)


@dataclasses.dataclass(frozen=True)
class Program:
    """One build of a script: its starting agent, the input and the hooks that may kill."""

    agent: Agent[Any]
    input: str
    hooks: RunHooks[Any]


def _usage(turn: Turn) -> Usage:
    return Usage(
        requests=1,
        input_tokens=turn.input_tokens,
        output_tokens=turn.output_tokens,
        total_tokens=turn.input_tokens + turn.output_tokens,
    )


def _step(script: Script, turn: int) -> ModelStep:
    spec = script.turns[turn - 1]
    output: list[Any] = []
    if spec.text is not None or not (spec.calls or spec.handoff):
        output.append(assistant_message(spec.text or "done", item_id=f"t{turn}-m"))
    if spec.handoff:
        output.append(function_call("transfer_to_helper", {}, call_id=f"t{turn}-h"))
    for j, c in enumerate(spec.calls, 1):
        output.append(function_call(c.tool, {"key": c.key}, call_id=call_id(turn, j)))
    return ModelStep(output=output, usage=_usage(spec))


class _KillHooks(RunHooks[Any]):
    """SIGKILL the process after model call `turn`, or once tool call `call_id` returned."""

    def __init__(self, kill: KillPoint | None) -> None:
        self.kill = kill

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        kill = self.kill
        if kill is None or kill.kind != "model":
            return
        turns = {_turn_of_id(_field(i, "call_id") or _field(i, "id")) for i in response.output}
        if kill.turn in turns:
            _die()

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object
    ) -> None:
        kill = self.kill
        if kill is not None and kill.kind == "tool_end" and kill.call_id == _call_id(context):
            _die()


def build(
    script: Script, ledger: Path, kill: KillPoint | None, variant: Variant | None = None
) -> Program:
    """Agents for `script`, fresh: a main agent with the tools, handing off to a helper."""

    def respond(call: ModelCall) -> ModelStep:
        turn = _turns_in(call.input) + 1
        _log(ledger / MODEL_LOG, str(turn))
        return _step(script, turn)

    def at(kind: KillKind, cid: str) -> bool:
        return kill is not None and kill.kind == kind and kill.call_id == cid

    async def effect(ctx: ToolContext[Any], tool: str, key: str) -> str:
        if at("tool_start", ctx.tool_call_id):
            _die()
        _log(ledger / TOOL_LOG, ctx.tool_call_id)  # the side effect that must not repeat
        if at("tool_mid", ctx.tool_call_id):
            _die()
        return f"{tool} {key}: ok"

    async def fetch(ctx: ToolContext[Any], key: str) -> str:
        """Fetch the value stored under a key."""
        return await effect(ctx, "fetch", key)

    async def fetch_fresh(ctx: ToolContext[Any], key: str, fresh: bool = False) -> str:
        """Fetch the value stored under a key."""
        return await effect(ctx, "fetch", key)

    async def store(ctx: ToolContext[Any], key: str) -> str:
        """Store a value under a key."""
        return await effect(ctx, "store", key)

    fetching = fetch_fresh if variant == "tool_parameters" else fetch
    tools: list[Tool] = [
        function_tool(fetching, name_override="fetch"),
        function_tool(store, name_override="store"),
    ]
    model = ScriptedModel([ModelStep.respond(respond) for _ in script.turns])
    settings = ModelSettings(temperature=0.5) if variant == "model_settings" else ModelSettings()
    instructions = INSTRUCTIONS + (" Be brief." if variant == "instructions" else "")
    helper: Agent[Any] = Agent(
        name="helper", instructions=instructions, model=model, tools=tools, model_settings=settings
    )
    main: Agent[Any] = Agent(
        name="main",
        instructions=instructions,
        model=model,
        tools=tools,
        handoffs=[helper],
        model_settings=settings,
    )
    run_input = script.input + (" Again." if variant == "input" else "")
    return Program(main, run_input, _KillHooks(kill))


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return repr(value)


def observe(result: RunResultBase) -> dict[str, Any]:
    """What a program sees of a finished run, as JSON data."""
    usage = result.context_wrapper.usage
    seen = {
        "final_output": result.final_output,
        "last_agent": result.last_agent.name,
        "new_items": [[type(i).__name__, i.agent.name] for i in result.new_items],
        "to_input_list": result.to_input_list(),
        "usage": {
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "request_usage_entries": usage.request_usage_entries,
        },
    }
    loaded: dict[str, Any] = json.loads(json.dumps(seen, default=_plain))
    return loaded


async def _run(runner: Any, mode: str, program: Program) -> RunResultBase:
    if mode == "run":
        result: RunResultBase = await runner.run(program.agent, program.input, hooks=program.hooks)
        return result
    streaming = runner.run_streamed(program.agent, program.input, hooks=program.hooks)
    async for _ in streaming.stream_events():
        pass
    streamed: RunResultBase = streaming
    return streamed


def _history(caps: Any, run_id: str) -> dict[str, Any]:
    """The run's history as JSON data, or {"error": ...} if reading it failed."""
    try:
        history = asyncio.run(caps.history(run_id))
        data: dict[str, Any] = dataclasses.asdict(history)
    except Exception as exc:
        return {"error": f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"}
    return data


def execute(job: Mapping[str, Any]) -> None:
    """One child's work (see the module docstring); the outcome goes to `job["out"]` as JSON."""
    import runplane

    runner = runplane.runner(job["backend"])
    caps = runplane.durability_of(runner.backend())
    if caps is None:
        raise RuntimeError(f"backend {job['backend']!r} offers no durability capabilities")
    out: dict[str, Any] = {}
    rid = job["run_id"]
    if job.get("history_before"):
        out["history_before"] = _history(caps, rid)
    if job.get("run", True):
        kill = KillPoint(**job["kill"]) if job.get("kill") else None
        script = Script.from_json(job["script"])
        program = build(script, Path(job["ledger"]), kill, job.get("variant"))
        mode = job["mode"]
        try:
            with caps.run_id(rid):
                if mode == "run_sync":
                    result: RunResultBase = runner.run_sync(
                        program.agent, program.input, hooks=program.hooks
                    )
                else:
                    result = asyncio.run(_run(runner, mode, program))
            out["result"] = observe(result)
        except Exception as exc:
            out["error"] = {
                "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "message": str(exc),
                "divergence": isinstance(exc, tuple(caps.divergence_errors)),
            }
    if job.get("history_after"):
        out["history_after"] = _history(caps, rid)
    tmp = Path(job["out"] + ".tmp")
    tmp.write_text(json.dumps(out), encoding="utf-8")
    tmp.replace(job["out"])
