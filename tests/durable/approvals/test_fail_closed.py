"""Where the SDK's approvals are fragile, a durable run fails closed: decisions survive a context
passed on resume (openai-agents issue 4244), nested `Agent.as_tool` runs (agents of one name
too) after a JSON round trip (issue 5141), and an ambiguous decision never runs the tool."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from agents import Agent, RunContextWrapper, RunState, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, run_id
from runplane_durable.errors import RunStateInvalidError
from runplane_durable.runtime.runner import resume_run
from support.durable import run_async


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@dataclass
class Seen:
    """What the tools saw: each payment with the context it ran with."""

    paid: list[tuple[str, int, Any]] = field(default_factory=list)

    def pay_tool(self, who: str) -> Any:
        paid = self.paid

        @function_tool(needs_approval=True)
        def pay(ctx: RunContextWrapper[Any], amount: int) -> str:
            """Pay an amount."""
            paid.append((who, amount, ctx.context))
            return f"{who} paid {amount}"

        return pay


def _payer(seen: Seen, *script: Any) -> Agent[Any]:
    return Agent(name="payer", tools=[seen.pay_tool("payer")], model=ScriptedModel(list(script)))


_ASK = [function_call("pay", {"amount": 5}, call_id="p1")]
_DONE = [assistant_message("done")]


def test_approvals_survive_a_context_passed_on_resume(backend: DurableBackend) -> None:
    rid, seen = _unique("ctx"), Seen()
    with run_id(rid):
        run_async(backend.run(_payer(seen, _ASK), "pay", context={"user": "first"}))
    run_async(backend.engine.decide(rid, "p1", approve=True))
    record = run_async(backend.get_run(rid))
    done = run_async(resume_run(backend, record, _payer(seen, _DONE), context={"user": "again"}))
    assert done.final_output == "done"
    assert seen.paid == [("payer", 5, {"user": "again"})]


def test_the_sdk_pattern_with_a_context_keeps_the_approval(backend: DurableBackend) -> None:
    rid, seen = _unique("ctx-sdk"), Seen()
    # The SDK's pattern: the same agent, its state approved and passed back in (a state goes on
    # with its own agents, as the SDK's runner does).
    agent = _payer(seen, _ASK, _DONE)
    with run_id(rid):
        result = run_async(backend.run(agent, "pay", context={"user": "first"}))
    state = result.to_state()
    state.approve(result.interruptions[0])
    done = run_async(backend.run(agent, state, context={"user": "given"}))
    assert done.final_output == "done"
    assert seen.paid == [("payer", 5, {"user": "given"})]


def _boss(seen: Seen, helpers: list[tuple[str, str]], boss_script: Any, helper_script: Any) -> Any:
    """A boss whose tools are helper agents (`tool name`, `agent name`); each helper pays."""
    tools = []
    for tool_name, agent_name in helpers:
        helper = Agent(
            name=agent_name,
            tools=[seen.pay_tool(tool_name)],
            model=ScriptedModel(list(helper_script(tool_name))),
        )
        tools.append(helper.as_tool(tool_name=tool_name, tool_description=f"Ask {tool_name}."))
    return Agent(name="boss", tools=tools, model=ScriptedModel(list(boss_script)))


def _ask_both(names: list[str]) -> list[Any]:
    return [[function_call(n, {"input": "pay"}, call_id=f"a-{n}") for n in names]]


def test_nested_as_tool_runs_with_repeated_names_resume_after_a_json_round_trip(
    backend: DurableBackend,
) -> None:
    rid, seen = _unique("nested"), Seen()
    helpers = [("left", "helper"), ("right", "helper")]  # two agents of one name

    def first(name: str) -> list[Any]:
        return [[function_call("pay", {"amount": 5}, call_id=f"p-{name}")]]

    def rest(name: str) -> list[Any]:
        return [[assistant_message(f"{name} done")]]

    with run_id(rid):
        result = run_async(
            backend.run(_boss(seen, helpers, _ask_both(["left", "right"]), first), "go")
        )
    assert sorted(i.call_id for i in result.interruptions) == ["p-left", "p-right"]
    approvals = run_async(backend.engine.list_approvals(rid))
    assert sorted(a.call_id for a in approvals) == ["p-left", "p-right"]
    # the SDK's pattern across a JSON round trip: approve one, reject the other
    boss = _boss(seen, helpers, [[assistant_message("all done")]], rest)
    state = run_async(RunState.from_json(boss, result.to_state().to_json()))
    for item in state.get_interruptions():
        if item.call_id == "p-left":
            state.approve(item)
        else:
            state.reject(item, rejection_message="not you")
    with run_id(rid):
        done = run_async(backend.run(boss, state))
    assert done.final_output == "all done"
    assert [(who, amount) for who, amount, _ in seen.paid] == [("left", 5)]
    decided = {a.call_id: a.status for a in run_async(backend.engine.list_approvals(rid))}
    assert decided == {"p-left": "approved", "p-right": "rejected"}
    assert run_async(backend.get_run(rid)).status == "completed"


def test_nested_decisions_stored_from_elsewhere_resume_the_nested_runs(
    backend: DurableBackend,
) -> None:
    rid, seen = _unique("nested-stored"), Seen()
    helpers = [("only", "helper")]
    with run_id(rid):
        run_async(
            backend.run(
                _boss(seen, helpers, _ask_both(["only"]), lambda n: [_ASK]),
                "go",
            )
        )
    run_async(backend.engine.decide(rid, "p1", approve=True, by="ops"))
    boss = _boss(seen, helpers, [[assistant_message("boss done")]], lambda n: [_DONE])
    done = run_async(resume_run(backend, run_async(backend.get_run(rid)), boss))
    assert done.final_output == "boss done"
    assert [(who, amount) for who, amount, _ in seen.paid] == [("only", 5)]
    runs = {r.id: r.status for r in run_async(backend.list_runs(limit=50)) if r.id.startswith(rid)}
    assert set(runs.values()) == {"completed"}
    assert len(runs) == 2  # the boss's run and its helper's


def test_an_ambiguous_decision_never_runs_the_tool(backend: DurableBackend) -> None:
    rid, seen = _unique("ambiguous"), Seen()
    helpers = [("left", "helper"), ("right", "helper")]
    with run_id(rid):
        result = run_async(
            backend.run(_boss(seen, helpers, _ask_both(["left", "right"]), lambda n: [_ASK]), "go")
        )
    # both nested runs asked for call "p1": one decision cannot say which it means
    assert [i.call_id for i in result.interruptions] == ["p1", "p1"]
    run_async(backend.engine.decide(rid, "p1", approve=True))
    boss = _boss(seen, helpers, [[assistant_message("x")]], lambda n: [_DONE])
    with pytest.raises(RunStateInvalidError, match="matches 2 of the calls"):
        run_async(resume_run(backend, run_async(backend.get_run(rid)), boss))
    assert seen.paid == []
    assert run_async(backend.get_run(rid)).status == "awaiting_approval"
