"""Approvals in the runtime: the snapshot a run stops in, the caller's decisions, the resume.

A durable run that the SDK interrupts for approval is stored with its `RunState` JSON (sealed by
the engine) and the calls it waits on. It resumes under its own id: from a `RunState` the caller
hands back in (the SDK's pattern; the caller's decisions are recorded first, like those made from
another process with `Engine.decide`, and stored ones it lacks are applied to it), or else from
the stored snapshot with the stored decisions applied. A decision applies to exactly one waiting
call with the same tool, agent and arguments; anything else (a decision that matches several
calls, or a restored snapshot's call it does not match) is refused before the run is opened, so
no tool runs on an ambiguous or unverifiable decision.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import weakref
from typing import Any

from agents import Agent, RunContextWrapper, RunResult, RunResultStreaming, RunState

from ..errors import JournalSerializationError, RunStateInvalidError
from ..names import tool_key
from ..records import Approval, Snapshot
from .sdk_internals import decision_in

__all__ = [
    "STOPPED_NESTED",
    "apply_decisions",
    "caller_decisions",
    "issued_by",
    "policy_rule",
    "remember_states",
    "restored_state",
    "snapshot_of",
]

log = logging.getLogger("runplane_durable")

# Set by a durable run's tool call while it runs (`intercept`): a run that tool started
# (`Agent.as_tool`) and that stopped for approval adds its id, so the call's output (the SDK's
# pending nested state) is not journaled: on resume the call runs again, and resumes that run.
STOPPED_NESTED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "runplane_durable_stopped_nested", default=None
)

# RunStates handed out by a durable run's result (`result.to_state()`), by id: passing one back
# in (`Runner.run(agent, state)`) continues that run, under its id. A RunState is a dataclass
# (unhashable), so weak references by id, dropped with the state.
_ISSUED: dict[int, tuple[weakref.ref[Any], str]] = {}


def _remember(state: RunState[Any], run_id: str) -> None:
    key = id(state)

    def forget(_: object) -> None:
        _ISSUED.pop(key, None)

    _ISSUED[key] = (weakref.ref(state, forget), run_id)


def issued_by(state: RunState[Any]) -> str | None:
    """The durable run `state` was made from (its result's `to_state()`), in this process."""
    found = _ISSUED.get(id(state))
    if found is None or found[0]() is not state:
        return None
    return found[1]


def remember_states(result: RunResult | RunResultStreaming, run_id: str) -> None:
    """Make every RunState `result.to_state()` gives continue run `run_id` when passed back."""
    original = result.to_state

    def to_state() -> RunState[Any]:
        state = original()
        _remember(state, run_id)
        return state

    result.to_state = to_state  # type: ignore[method-assign]


def policy_rule(call_id: str) -> str | None:
    """The `runplane.policy` rule that asked for this call's approval, when that module exists
    and knows the call; None otherwise (the approval is recorded without one)."""
    try:
        from runplane import policy  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    rule_for_call = getattr(policy, "rule_for_call", None)
    if not callable(rule_for_call):
        return None
    try:
        rule = rule_for_call(call_id)
    except Exception:  # which rule asked is for the record; it never stops the run
        log.warning("runplane.policy.rule_for_call(%r) failed", call_id, exc_info=True)
        return None
    return rule if isinstance(rule, str) else None


def snapshot_of(result: RunResult | RunResultStreaming, model_calls: int) -> Snapshot:
    """What a run interrupted for approval is stored with: its state, the model calls made
    (where a resume's journal cursor starts) and one `Approval` per waiting call."""
    try:
        state = result.to_state().to_json()
    except Exception as exc:
        raise JournalSerializationError(
            f"the run stopped for approval, and its RunState cannot be serialized by "
            f"RunState.to_json() ({type(exc).__name__}: {exc}); the durable backend stores it to "
            "resume the run from any process. Give the agents unique names and a context of "
            "JSON data (or a dataclass or pydantic model)."
        ) from exc
    approvals = []
    for item in result.interruptions:
        call_id = item.call_id
        if not isinstance(call_id, str):
            continue
        approvals.append(
            Approval(
                call_id=call_id,
                tool_name=item.tool_name or "",
                arguments=item.arguments or "",
                agent_name=item.agent.name,
                key=tool_key(model_calls, call_id),
                policy=policy_rule(call_id),
            )
        )
    return Snapshot(state=state, model_calls=model_calls, approvals=approvals)


def caller_decisions(
    run_id: str, state: RunState[Any], waiting: list[Approval]
) -> list[tuple[Approval, bool, str | None]]:
    """The decisions the caller made on `state` for the calls the run waits on: (approval,
    approved, rejection message). A call the caller's state holds several times is ambiguous:
    RunStateInvalidError, nothing recorded."""
    items = state.get_interruptions()
    decided = []
    for approval in waiting:
        matching = [i for i in items if i.call_id == approval.call_id]
        if not matching:
            continue
        if len(matching) > 1:
            raise RunStateInvalidError(
                run_id=run_id,
                problem=f"the RunState passed in holds call {approval.call_id!r} "
                f"{len(matching)} times, so a decision on it is ambiguous",
            )
        approved, message = decision_in(state, matching[0])
        if approved is not None:
            decided.append((approval, approved, message))
    return decided


async def restored_state(
    run_id: str, agent: Agent[Any], snapshot: Snapshot, context: Any | None
) -> RunState[Any]:
    """The stored snapshot as a RunState (with `context` in place of the stored one, when
    given), each stored decision applied to the one waiting call it names. A decision that
    names no waiting call, or one of several alike, or one whose tool, agent or arguments
    differ from the call's, is refused (RunStateInvalidError): it never runs the tool."""
    # A run an `Agent.as_tool` call started is given the tool's context (a `ToolContext`, which
    # the SDK does not restore into): its value is the context the resumed run gets.
    while isinstance(context, RunContextWrapper):
        context = context.context
    state: RunState[Any] = await RunState.from_json(
        agent, copy.deepcopy(snapshot.state), context_override=context
    )
    apply_decisions(run_id, state, snapshot, strict=True)
    return state


def apply_decisions(run_id: str, state: RunState[Any], snapshot: Snapshot, *, strict: bool) -> None:
    """Apply the snapshot's stored decisions to the calls `state` waits on. `strict` (a state
    restored from the snapshot): every decision must name exactly one waiting call. Otherwise
    (the caller's own state, passed back in): a call the state no longer waits on, or has
    decided itself, is left as the state has it. Either way, a decision matching several calls,
    or one whose tool, agent or arguments differ from the call's, is refused
    (RunStateInvalidError): it never runs the tool."""
    items = state.get_interruptions()
    for approval in snapshot.approvals:
        if not approval.decided:
            continue
        matching = [i for i in items if i.call_id == approval.call_id]
        if len(matching) > 1 or (strict and not matching):
            raise RunStateInvalidError(
                run_id=run_id,
                problem=f"the decision on call {approval.call_id!r} matches "
                f"{len(matching)} of the calls the snapshot waits on, so it is not applied",
            )
        if not matching:
            continue
        item = matching[0]
        if (
            (item.tool_name or "") != approval.tool_name
            or (item.arguments or "") != approval.arguments
            or item.agent.name != approval.agent_name
        ):
            raise RunStateInvalidError(
                run_id=run_id,
                problem=f"the decision on call {approval.call_id!r} was made for "
                f"{approval.tool_name}({approval.arguments}) of agent {approval.agent_name!r}, "
                f"and the snapshot's call is {item.tool_name}({item.arguments}) of agent "
                f"{item.agent.name!r}",
            )
        if not strict and decision_in(state, item)[0] is not None:
            continue  # the caller decided it on this state (and that decision is recorded)
        if approval.status == "approved":
            state.approve(item, always_approve=approval.always)
        else:
            state.reject(item, always_reject=approval.always, rejection_message=approval.message)
