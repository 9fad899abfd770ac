"""A durable run that stops for approval continues under its own id (issue #12's first paragraph):
the SDK's pattern of approving on the state and passing it back in, `Runner.resume` with the
decisions stored from another process, and a plain re-run under the id; each finishes once,
replaying its journal (no model call and no completed tool repeated)."""

from __future__ import annotations

import sys
import time
import types
import uuid
from typing import Any

import pytest
from agents import Agent, RunState, function_tool
from agents import Runner as SdkRunner
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, LocalEngine, Runner, RunNotFoundError, run_id
from runplane_durable.errors import (
    ApprovalConflictError,
    ApprovalNotFoundError,
    JournalSerializationError,
    UnstorableNameError,
)
from runplane_durable.events import ApprovalDecided, ApprovalRequested, parse
from runplane_durable.runtime.runner import resume_run
from support.durable import run_async


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class Payer:
    """An agent whose `pay` needs approval; `paid` counts real executions."""

    def __init__(self) -> None:
        self.paid: list[int] = []
        self.models: list[ScriptedModel] = []

    def agent(self, *script: Any) -> Agent[Any]:
        paid = self.paid

        @function_tool(needs_approval=True)
        def pay(amount: int) -> str:
            """Pay an amount."""
            paid.append(amount)
            return f"paid {amount}"

        model = ScriptedModel(list(script))
        self.models.append(model)
        return Agent(name="payer", tools=[pay], model=model)

    def first(self) -> Agent[Any]:
        return self.agent([function_call("pay", {"amount": 5}, call_id="p1")])

    def rest(self) -> Agent[Any]:
        return self.agent([assistant_message("done paying")])

    def whole(self) -> Agent[Any]:
        """One agent for the whole run: a state passed back in goes on with its own agents, as
        with the SDK's runner."""
        return self.agent(
            [function_call("pay", {"amount": 5}, call_id="p1")], [assistant_message("done paying")]
        )

    def model_calls(self) -> int:
        return sum(len(m.calls) for m in self.models)


def _stop(backend: DurableBackend, rid: str, payer: Payer, agent: Agent[Any] | None = None) -> Any:
    with run_id(rid):
        result = run_async(backend.run(agent or payer.first(), "pay five"))
    assert [i.call_id for i in result.interruptions] == ["p1"]
    return result


def test_a_waiting_run_holds_nothing_and_has_no_finished_time(backend: DurableBackend) -> None:
    rid, payer = _unique("wait"), Payer()
    _stop(backend, rid, payer)
    record = run_async(backend.get_run(rid))
    assert record.status == "awaiting_approval"
    assert record.finished_at is None
    assert record.owner is None
    assert record.lease_expires_at is None
    (approval,) = run_async(backend.engine.list_approvals(rid))
    assert (approval.call_id, approval.tool_name, approval.agent_name) == ("p1", "pay", "payer")
    assert approval.arguments == '{"amount":5}'
    assert approval.status == "pending"
    assert approval.decided_by is None
    assert approval.policy is None  # no runplane.policy rule asked
    events = [parse(e) for e in run_async(backend.engine.list_events(rid))]
    requested = [e for e in events if isinstance(e, ApprovalRequested)]
    assert [(e.call_id, e.name, e.arguments) for e in requested] == [("p1", "pay", '{"amount":5}')]
    run_async(backend.engine.dispose())


def test_the_sdk_pattern_continues_the_same_run(backend: DurableBackend) -> None:
    rid, payer = _unique("sdk"), Payer()
    agent = payer.whole()
    result = _stop(backend, rid, payer, agent)
    state = result.to_state()
    state.approve(result.interruptions[0])
    done = run_async(backend.run(agent, state))
    assert done.final_output == "done paying"
    assert payer.paid == [5]
    assert payer.model_calls() == 2  # one each: the stopped run's, and the one after the tool
    record = run_async(backend.get_run(rid))
    assert record.status == "completed"
    assert record.finished_at is not None
    (approval,) = run_async(backend.engine.list_approvals(rid))
    assert approval.status == "approved"
    assert approval.decided_by is not None
    assert "Runner.run" in approval.decided_by
    types = [e.type for e in run_async(backend.engine.list_events(rid))]
    assert types.count("run_completed") == 1
    assert types.count("run_awaiting_approval") == 1
    assert types.count("approval_decided") == 1
    run_async(backend.engine.dispose())


def test_the_sdk_pattern_after_a_json_round_trip_under_the_id(backend: DurableBackend) -> None:
    rid, payer = _unique("json"), Payer()
    result = _stop(backend, rid, payer)
    data = result.to_state().to_json()
    agent = payer.rest()
    state = run_async(RunState.from_json(agent, data))
    state.reject(state.get_interruptions()[0], rejection_message="not today")
    with run_id(rid):
        done = run_async(backend.run(agent, state))
    assert done.final_output == "done paying"
    assert payer.paid == []
    (approval,) = run_async(backend.engine.list_approvals(rid))
    assert (approval.status, approval.message) == ("rejected", "not today")
    run_async(backend.engine.dispose())


def test_resume_applies_the_decisions_stored_from_elsewhere(
    backend: DurableBackend, db_url: str
) -> None:
    rid, payer = _unique("stored"), Payer()
    _stop(backend, rid, payer)
    other = LocalEngine(db_url)  # another engine: as another process has
    try:
        run_async(other.decide(rid, "p1", approve=True, by="alice"))
    finally:
        run_async(other.dispose())
    record = run_async(backend.get_run(rid))
    done = run_async(resume_run(backend, record, payer.rest()))
    assert done.final_output == "done paying"
    assert payer.paid == [5]
    (approval,) = run_async(backend.engine.list_approvals(rid))
    assert approval.decided_by == "alice"
    # finished: resuming again replays the result, running nothing
    again = run_async(resume_run(backend, run_async(backend.get_run(rid)), payer.agent()))
    assert again.final_output == "done paying"
    assert payer.paid == [5]
    run_async(backend.engine.dispose())


def test_a_plain_rerun_under_the_id_applies_the_stored_decision(backend: DurableBackend) -> None:
    rid, payer = _unique("rerun"), Payer()
    _stop(backend, rid, payer)
    run_async(backend.engine.decide(rid, None, approve=True))
    with run_id(rid):
        done = run_async(backend.run(payer.rest(), "pay five"))
    assert done.final_output == "done paying"
    assert payer.paid == [5]
    run_async(backend.engine.dispose())


def test_runner_approve_then_resume() -> None:
    rid, payer = _unique("runner"), Payer()
    with run_id(rid):
        result = run_async(Runner.run(payer.first(), "pay five"))
    assert result.interruptions
    assert [a.status for a in run_async(Runner.approvals(rid))] == ["pending"]
    approved = run_async(Runner.approve(rid, "p1", always=True))
    assert [(a.status, a.always) for a in approved] == [("approved", True)]
    again = run_async(Runner.approve(rid, "p1", always=True))  # idempotent
    assert again == approved
    decided = [e for e in run_async(Runner.events(rid)) if e.type == ApprovalDecided.TYPE]
    assert len(decided) == 1
    done = run_async(Runner.resume(rid, payer.rest()))
    assert done.final_output == "done paying"
    assert payer.paid == [5]
    assert run_async(Runner.get_run(rid)).status == "completed"


def test_runner_reject_tells_the_model() -> None:
    rid, payer = _unique("reject"), Payer()
    with run_id(rid):
        run_async(Runner.run(payer.first(), "pay five"))
    run_async(Runner.reject(rid, "p1", message="over budget"))
    rest = payer.rest()
    done = run_async(Runner.resume(rid, rest))
    assert done.final_output == "done paying"
    assert payer.paid == []
    (call,) = payer.models[-1].calls
    outputs = [
        i for i in call.input if isinstance(i, dict) and i.get("type") == "function_call_output"
    ]
    assert "over budget" in str(outputs[-1]["output"])


def test_decisions_that_cannot_be_made(backend: DurableBackend) -> None:
    rid, payer = _unique("refuse"), Payer()
    _stop(backend, rid, payer)
    with pytest.raises(ApprovalNotFoundError, match="p9") as unknown:
        run_async(backend.engine.decide(rid, "p9", approve=True))
    assert unknown.value.pending == ["p1"]
    run_async(backend.engine.decide(rid, "p1", approve=True))
    with pytest.raises(ApprovalConflictError, match="approved already"):
        run_async(backend.engine.decide(rid, "p1", approve=False))
    with pytest.raises(ApprovalNotFoundError, match="no call waiting"):
        run_async(backend.engine.decide(rid, None, approve=True))
    run_async(resume_run(backend, run_async(backend.get_run(rid)), payer.rest()))
    with pytest.raises(ApprovalConflictError, match="completed"):
        run_async(backend.engine.decide(rid, "p1", approve=True))
    with pytest.raises(RunNotFoundError):
        run_async(backend.engine.list_approvals(_unique("never")))
    with pytest.raises(RunNotFoundError):
        run_async(backend.engine.decide(_unique("never"), None, approve=True))
    run_async(backend.engine.dispose())


def test_the_policy_rule_that_asked_is_recorded(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runplane

    policy = types.ModuleType("runplane.policy")
    policy.rule_for_call = lambda call_id: f"payments-over-1 ({call_id})"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "runplane.policy", policy)
    monkeypatch.setattr(runplane, "policy", policy, raising=False)
    rid = _unique("policy")
    _stop(backend, rid, Payer())
    (approval,) = run_async(backend.engine.list_approvals(rid))
    assert approval.policy == "payments-over-1 (p1)"
    run_async(backend.engine.dispose())


def test_a_state_the_sdk_cannot_serialize_fails_the_run_saying_why(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: RunState[Any], **_: Any) -> dict[str, Any]:
        raise TypeError("cannot serialize this context")

    monkeypatch.setattr(RunState, "to_json", refuse)
    rid = _unique("unserializable")
    with run_id(rid), pytest.raises(JournalSerializationError, match="cannot be serialized"):
        run_async(backend.run(Payer().first(), "pay five"))
    assert run_async(backend.get_run(rid)).status == "failed"
    run_async(backend.engine.dispose())


def test_pruning_a_finished_run_deletes_its_snapshot_and_approvals(
    sqlite_backend: DurableBackend,
) -> None:
    # a database of its own: pruning deletes every run finished before the time given
    backend = sqlite_backend
    rid, payer = _unique("prune"), Payer()
    _stop(backend, rid, payer)
    assert run_async(backend.engine.prune(finished_before=time.time() + 60)) == 0  # waiting
    run_async(backend.engine.decide(rid, "p1", approve=True))
    run_async(resume_run(backend, run_async(backend.get_run(rid)), payer.rest()))
    assert run_async(backend.engine.prune(finished_before=time.time() + 60)) == 1
    assert run_async(backend.engine.load_snapshot(rid)) is None
    with pytest.raises(RunNotFoundError):
        run_async(backend.engine.list_approvals(rid))
    run_async(backend.engine.dispose())


def test_the_sdk_pattern_streamed_continues_the_same_run(backend: DurableBackend) -> None:
    rid, payer = _unique("streamed"), Payer()

    # one agent both times, as a program has: a state holds the agent objects it ran with
    agent = payer.agent(
        [function_call("pay", {"amount": 5}, call_id="p1")], [assistant_message("done paying")]
    )

    async def go() -> Any:
        with run_id(rid):
            first = backend.run_streamed(agent, "pay five")
            async for _ in first.stream_events():
                pass
        assert [i.call_id for i in first.interruptions] == ["p1"]
        state = first.to_state()
        state.approve(first.interruptions[0])
        again = backend.run_streamed(agent, state)
        async for _ in again.stream_events():
            pass
        return again.final_output

    assert run_async(go()) == "done paying"
    assert payer.paid == [5]
    assert payer.model_calls() == 2
    record = run_async(backend.get_run(rid))
    assert record.status == "completed"
    (approval,) = run_async(backend.engine.list_approvals(rid))
    assert approval.status == "approved"
    assert [r.id for r in run_async(backend.list_runs(limit=500))].count(rid) == 1
    run_async(backend.engine.dispose())


def test_a_call_id_no_database_can_store_is_refused(backend: DurableBackend) -> None:
    rid = _unique("nul")
    _stop(backend, rid, Payer())
    with pytest.raises(UnstorableNameError, match="NUL") as info:
        run_async(backend.engine.decide(rid, "p\x001", approve=True))
    assert info.value.what == "a call id"
    run_async(backend.engine.dispose())


def _triage() -> Agent[Any]:
    """Triage (its tool needs approval) hands off to a delegate (its tool needs approval)."""

    @function_tool(needs_approval=True)
    def triage_tool() -> str:
        return "ok"

    @function_tool(needs_approval=True)
    def delegate_tool() -> str:
        return "ok"

    model = ScriptedModel(
        [
            [function_call("triage_tool", {}, call_id="t1")],
            [function_call("transfer_to_delegate", {}, call_id="h1")],
            [function_call("delegate_tool", {}, call_id="d1")],
        ]
    )
    delegate = Agent(name="delegate", model=model, tools=[delegate_tool])
    return Agent(name="triage", model=model, tools=[triage_tool], handoffs=[delegate])


async def _continued(runner: Any) -> tuple[list[str | None], Any, Any]:
    triage = _triage()
    first = await runner.run(triage, "go")
    state = first.to_state()
    state.approve(first.interruptions[0])
    second = await runner.run(triage, state)
    data = state.to_json()
    return [i.tool_name for i in second.interruptions], data["current_agent"], data["current_turn"]


def test_a_state_passed_back_goes_on_from_that_state(backend: DurableBackend) -> None:
    """The SDK's runner goes on from the very state passed in and updates it in place (its
    current agent after a handoff, its turn): a durable run continued under its id leaves the
    caller's state exactly as the SDK's runner does, not a copy restored from the snapshot."""
    sdk = run_async(_continued(SdkRunner))
    with run_id(_unique("own")):
        durable = run_async(_continued(backend))
    assert sdk == (["delegate_tool"], {"name": "delegate"}, 3)
    assert durable == sdk
    run_async(backend.engine.dispose())
