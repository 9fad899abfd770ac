"""Replaying a loaded golden file with today's code: its finished runs, its unfinished one, and
how a replay's summary differs from the recorded one."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from agents.testing import ScriptedModel
from runplane_durable import DurableBackend, LocalEngine, run_id

from support.golden_files import table_rows
from support.golden_programs import Ledger, Program, describe_event, summary

__all__ = ["Replayed", "differences", "replay_finished", "resume_unfinished", "run_agent"]


@dataclass
class Replayed:
    """What replaying one run did: what it returned, and what it called."""

    summary: dict[str, Any]
    model_calls: int  # calls that reached a model (the journal answers the rest)
    tool_calls: list[str]  # tools that really ran


def _input(stored: str) -> Any:
    data = json.loads(stored)
    if "text" in data:
        return data["text"]
    if "items" in data:
        return data["items"]
    raise AssertionError(f"a run input this helper cannot replay: {sorted(data)}")


async def run_agent(url: str, agent: Any, input: Any, mode: str, rid: str) -> dict[str, Any]:
    """Run `agent` under run id `rid` on a durable backend on `url`; the run's summary."""
    backend = DurableBackend(LocalEngine(url))
    try:
        with run_id(rid):
            if mode == "run_streamed":
                streamed = backend.run_streamed(agent, input)
            else:
                result = await backend.run(agent, input)
        if mode == "run_streamed":
            events = [describe_event(e) async for e in streamed.stream_events()]
            return summary(streamed, events)
        return summary(result)
    finally:
        await backend.engine.dispose()


async def _run(
    url: str,
    program: Program,
    row: dict[str, Any],
    models: dict[str, ScriptedModel],
    ledger: Ledger,
) -> dict[str, Any]:
    """Run the program's agent that started the stored run `row`, on its stored input."""

    def model(name: str) -> ScriptedModel:
        return models.setdefault(name, ScriptedModel([]))

    agent = program.agents(model, ledger)[row["agent_name"]]
    mode = json.loads(row["options"])["mode"]
    return await run_agent(url, agent, _input(row["input"]), mode, row["id"])


def _called(models: dict[str, ScriptedModel]) -> int:
    return sum(len(m.calls) for m in models.values())


def replay_finished(url: str, program: Program, golden: dict[str, Any]) -> dict[str, Replayed]:
    """Replay every completed run of the loaded golden file: no model has a step to give, and
    every tool raises `ToolCalledOnReplay` if it runs."""
    out: dict[str, Replayed] = {}
    for row in table_rows(golden, "runplane_runs"):
        if row["status"] != "completed":
            continue
        models: dict[str, ScriptedModel] = {}
        ledger = Ledger(allowed=frozenset())
        result = asyncio.run(_run(url, program, row, models, ledger))
        out[row["id"]] = Replayed(result, _called(models), ledger.calls)
    return out


def resume_unfinished(
    url: str, program: Program, golden: dict[str, Any], *, allowed: frozenset[str], steps_done: int
) -> Replayed:
    """Resume the program's unfinished run: its model has only the steps after the first
    `steps_done` (a call beyond them raises), and only the `allowed` tools may run."""
    rows = {r["id"]: r for r in table_rows(golden, "runplane_runs")}
    row = rows[program.run_id]
    script = program.script()
    models = {
        name: ScriptedModel(steps[steps_done:] if name == row["agent_name"] else [])
        for name, steps in script.items()
    }
    ledger = Ledger(allowed=allowed)
    result = asyncio.run(_run(url, program, row, models, ledger))
    left = sum(m.remaining_steps for m in models.values())
    if left:
        raise AssertionError(f"the resumed run left {left} scripted model step(s) unused")
    return Replayed(result, _called(models), ledger.calls)


def differences(
    recorded: Any, replayed: Any, path: str = "", *, ignore: tuple[str, ...] = ()
) -> list[str]:
    """Where `replayed` differs from `recorded`, one line per difference (JSON paths); paths
    in `ignore` (and what is inside them) are not compared."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        out: list[str] = []
        for key in list(recorded) + [k for k in replayed if k not in recorded]:
            where = f"{path}.{key}" if path else str(key)
            if where in ignore:
                continue
            if key not in replayed:
                out.append(f"{where}: recorded {_short(recorded[key])}, missing from the replay")
            elif key not in recorded:
                out.append(f"{where}: not recorded, the replay has {_short(replayed[key])}")
            else:
                out.extend(differences(recorded[key], replayed[key], where, ignore=ignore))
        return out
    if isinstance(recorded, list) and isinstance(replayed, list) and len(recorded) == len(replayed):
        return [
            line
            for i, (a, b) in enumerate(zip(recorded, replayed, strict=True))
            for line in differences(a, b, f"{path}[{i}]", ignore=ignore)
        ]
    if recorded == replayed and type(recorded) is type(replayed):
        return []
    return [f"{path or '(whole)'}: recorded {_short(recorded)}, replayed {_short(replayed)}"]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 300 else text[:300] + "..."
