"""`apply(agent, policy)`: a clone of an agent graph whose tools ask for approval as a policy says.

Nothing in the agent's code changes and nothing runplane-specific runs the pause: each function
tool a policy can ask about is copied with `needs_approval` set to a callable that asks the policy
first and the tool's own setting after (a policy adds approvals, never removes one the tool asks
for), so the SDK's own interruption machinery pauses the run on every backend. The clone reaches
as far as the run can: handoffs (agents and `handoff()` objects), `Agent.as_tool` agents (their
copies run the cloned agent), MCP servers' tools (guarded as each turn lists them), cycles
included. Hosted tools (web search, hosted MCP, code interpreter) and the SDK's shell, computer
and patch tools are left as they are: they are not function calls this process runs.

A clone is made once per (agent, policy) and kept while the agent lives (for the process, for
agents in a cycle of `handoff()` objects, whose clones hold the originals), so applying again gives
the very same objects: a resumed `RunState`, the durable backend's journal (which digests what
the model is told about each tool, the same for a copy) and approvals bound to an agent's
identity all see one agent. Tools no rule can ask about stay the original objects.
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
import weakref
from collections import OrderedDict
from typing import Any, TypeVar, cast

from agents import Agent, FunctionTool, Handoff, RunContextWrapper
from agents.tool import Tool

from .. import _sdk
from .rules import ApprovalPolicy, PolicyError

__all__ = ["RECORDED_CALLS", "apply", "is_applied", "original_of", "rule_for_call"]

A = TypeVar("A", bound=Agent[Any])

RECORDED_CALLS = 10_000
"""How many calls `rule_for_call` remembers (the oldest are forgotten first)."""

_lock = threading.RLock()
# id(policy) -> (its weak reference, {id(agent): (the agent's weak reference, its clone)})
_clones: dict[int, tuple[weakref.ref[ApprovalPolicy], dict[int, tuple[Any, Agent[Any]]]]] = {}
# id(clone) -> (weak reference to the policy, weak reference to the original agent)
_made: dict[int, tuple[weakref.ref[ApprovalPolicy], weakref.ref[Agent[Any]]]] = {}
_rules: OrderedDict[str, str] = OrderedDict()
_rules_lock = threading.Lock()


def rule_for_call(call_id: str) -> str | None:
    """The name of the rule that asked for approval of tool call `call_id` in this process
    (`"default"` when the policy's default did), or None if no policy asked for it."""
    with _rules_lock:
        return _rules.get(call_id)


def _record(call_id: str, rule: str | None) -> None:
    with _rules_lock:
        if rule is None:
            _rules.pop(call_id, None)
            return
        _rules[call_id] = rule
        _rules.move_to_end(call_id)
        while len(_rules) > RECORDED_CALLS:
            _rules.popitem(last=False)


def apply(agent: A, policy: ApprovalPolicy) -> A:
    """A clone of `agent` (and of every agent it reaches) under `policy`; see the module text.

    Raises PolicyError for a tool the clone could not cover (an `as_tool` tool this SDK version
    builds differently), rather than leaving it unguarded.
    """
    if not isinstance(agent, Agent):
        raise TypeError(f"apply takes an agents.Agent, not a {type(agent).__name__}")
    if not isinstance(policy, ApprovalPolicy):
        raise TypeError(f"apply takes an ApprovalPolicy, not a {type(policy).__name__}")
    with _lock:
        return _Cloner(policy).agent(agent)


def is_applied(agent: Agent[Any], policy: ApprovalPolicy | None = None) -> bool:
    """Whether `agent` is a clone `apply` made (under `policy`, when one is given)."""
    made = _made.get(id(agent))
    if made is None or _cached_clone(made) is not agent:
        return False
    return policy is None or made[0]() is policy


def original_of(agent: A) -> A:
    """The agent a clone was made from (for a lookup by identity, such as a module attribute
    naming the agent); any other agent is its own original."""
    made = _made.get(id(agent))
    if made is None or _cached_clone(made) is not agent:
        return agent
    original = made[1]()
    return agent if original is None else original  # type: ignore[return-value]


def _cached_clone(made: tuple[weakref.ref[ApprovalPolicy], weakref.ref[Agent[Any]]]) -> Any:
    policy, original = made[0](), made[1]()
    if policy is None or original is None:
        return None
    entry = _clones.get(id(policy))
    found = entry[1].get(id(original)) if entry is not None else None
    return found[1] if found is not None and found[0]() is original else None


class _Cloner:
    """One `apply` call: clones made in it are kept only if all of it succeeds."""

    def __init__(self, policy: ApprovalPolicy) -> None:
        self.policy = policy
        self.made: dict[int, tuple[Agent[Any], Agent[Any]]] = {}  # id(original) -> both

    def agent(self, agent: A) -> A:
        clone = self._agent(agent)
        self._commit()
        return clone

    def _agent(self, agent: A) -> A:
        if is_applied(agent, self.policy):
            return agent
        known = self._known(agent)
        if known is not None:
            return known
        clone = cast(A, agent.clone())
        self.made[id(agent)] = (agent, clone)
        clone.tools = [self._tool(t) for t in agent.tools]
        clone.handoffs = [self._handoff(h) for h in agent.handoffs]
        if agent.mcp_servers:
            self._guard_mcp(clone)
        return clone

    def _known(self, agent: A) -> A | None:
        made = self.made.get(id(agent))
        if made is not None:
            return cast(A, made[1])
        entry = _clones.get(id(self.policy))
        if entry is None or entry[0]() is not self.policy:
            return None
        found = entry[1].get(id(agent))
        if found is None or found[0]() is not agent:
            return None
        return cast(A, found[1])

    def _tool(self, tool: Tool) -> Tool:
        if not isinstance(tool, FunctionTool):
            return tool  # hosted, shell, computer, patch tools: not covered (module text)
        nested = _sdk.agent_of_tool(tool)
        base = tool
        if nested is not None:
            rebound = _sdk.rebind_agent_tool(tool, self._agent(nested))
            if rebound is None:
                raise PolicyError(
                    f"cannot apply the policy inside tool {tool.name!r}, the agent "
                    f"{nested.name!r} as a tool: this Agents SDK builds such tools in a way "
                    "runplane does not know, so its agent's calls would go unguarded. Apply "
                    "the policy to that agent before calling as_tool, or use the SDK version "
                    "runplane pins."
                )
            base = rebound
        return self._guarded(base, own=tool.needs_approval)

    def _guarded(self, tool: FunctionTool, *, own: Any) -> FunctionTool:
        names = (tool.name, tool.qualified_name)
        if not self.policy.covers(names):
            return tool
        guarded = copy.copy(tool)
        guarded.needs_approval = _needs_approval(self.policy, tool.name, names, own)
        return guarded

    def _handoff(self, item: Any) -> Any:
        if isinstance(item, Agent):
            return self._agent(item)
        if not isinstance(item, Handoff):
            return item
        copied = copy.copy(item)
        copied.on_invoke_handoff = _guarded_handoff(item, self.policy)
        target = _sdk.handoff_target(item)
        if target is not None:
            _sdk.retarget_handoff(copied, self._agent(target))
        return copied

    def _guard_mcp(self, clone: Agent[Any]) -> None:
        """The clone's MCP tools, listed anew each turn, are guarded as they are listed."""
        listed = type(clone).get_mcp_tools
        guard = self._guarded

        async def get_mcp_tools(run_context: RunContextWrapper[Any]) -> list[Tool]:
            tools = await listed(clone, run_context)
            return [
                guard(t, own=t.needs_approval) if isinstance(t, FunctionTool) else t for t in tools
            ]

        # An instance attribute shadows the method for this clone alone (Agent has no slots).
        object.__setattr__(clone, "get_mcp_tools", get_mcp_tools)

    def _commit(self) -> None:
        policy = self.policy
        entry = _clones.get(id(policy))
        if entry is None or entry[0]() is not policy:
            pid = id(policy)
            entry = (weakref.ref(policy, functools.partial(_forget_policy, pid)), {})
            _clones[pid] = entry
        clones = entry[1]
        for key, (original, clone) in self.made.items():
            clones[key] = (
                weakref.ref(original, functools.partial(_forget, id(policy), key)),
                clone,
            )
            _made[id(clone)] = (entry[0], weakref.ref(original))
        self.made.clear()


def _forget(policy_id: int, agent_id: int, _gone: object) -> None:
    with _lock:
        entry = _clones.get(policy_id)
        if entry is None:
            return
        found = entry[1].get(agent_id)
        if found is not None and found[0]() is None:
            del entry[1][agent_id]
            _made.pop(id(found[1]), None)


def _forget_policy(policy_id: int, _gone: object) -> None:
    with _lock:
        entry = _clones.pop(policy_id, None)
        for _, clone in entry[1].values() if entry is not None else ():
            _made.pop(id(clone), None)


def _needs_approval(
    policy: ApprovalPolicy, tool_name: str, names: tuple[str, ...], own: Any
) -> Any:
    """The SDK's `needs_approval(run_context, params, call_id)`: the policy, then the tool's own.

    The SDK calls it only with arguments it could parse unchanged (otherwise it asks anyway), and
    counts an error it raises as "needs approval".
    """

    async def needs_approval(
        run_context: RunContextWrapper[Any], params: dict[str, Any], call_id: str
    ) -> bool:
        decision = await policy.decide(tool_name, params, run_context, names=names)
        if decision.require:
            _record(call_id, decision.rule)
            return True
        _record(call_id, None)  # a call id seen before (another run's) no longer says who asked
        if isinstance(own, bool):
            return own
        result = own(run_context, params, call_id)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    return needs_approval


def _guarded_handoff(item: Handoff[Any, Any], policy: ApprovalPolicy) -> Any:
    """`on_invoke_handoff` that hands off to the target's clone, whatever agent it returns."""
    invoke = item.on_invoke_handoff

    async def on_invoke_handoff(ctx: RunContextWrapper[Any], arguments: str) -> Agent[Any]:
        target = await invoke(ctx, arguments)
        return apply(target, policy) if isinstance(target, Agent) else target

    return on_invoke_handoff
