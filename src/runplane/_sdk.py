"""The private SDK names the core relies on, in one place (the SDK is pinned ~=0.24.0).

`agents.Runner.run`/`run_sync` never let an error marked "data redacted" carry the run's input in
its traceback; runner classes that stand in for `agents.Runner` must do the same.

`runplane.policy` clones an agent graph: a copy of an `Agent.as_tool` tool must run the clone of
its agent, and a copy of a `handoff()` must name the clone as its target (the SDK rebuilds a
resumed `RunState`'s agents from those references). The SDK keeps both in private fields, and
`as_tool` closes over its agent: `rebind_agent_tool` checks the shape it relies on and returns
None for any other, so a changed SDK is refused, never silently left uncovered.

`runplane.bridge` reads what a RunState given as input already holds (its items, model responses
and the context its approval decisions are recorded in), which RunState keeps in private fields,
and whether a streamed run was cancelled (`RunResultStreaming.cancel()` ends its stream quietly).
"""

from __future__ import annotations

import copy
import types
import weakref
from typing import Any

from agents import Agent, FunctionTool, Handoff, RunContextWrapper
from agents.exceptions import (
    _detach_data_redacted_error_traceback as detach_redacted_traceback,
)
from agents.exceptions import (
    _is_error_data_redacted as is_data_redacted,
)
from agents.exceptions import (
    _raise_data_redacted_error as raise_redacted,
)
from agents.items import ModelResponse, RunItem
from agents.run_state import RunState
from agents.tool import _FailureHandlingFunctionToolInvoker

__all__ = [
    "agent_of_tool",
    "detach_redacted_traceback",
    "handoff_target",
    "is_data_redacted",
    "raise_redacted",
    "rebind_agent_tool",
    "retarget_handoff",
    "run_cancelled",
    "run_state_agent",
    "run_state_context",
    "run_state_items",
    "run_state_responses",
]


def agent_of_tool(tool: FunctionTool) -> Agent[Any] | None:
    """The agent an `Agent.as_tool` tool runs; None for any other tool."""
    agent = tool._agent_instance if tool._is_agent_tool else None
    return agent if isinstance(agent, Agent) else None


def rebind_agent_tool(tool: FunctionTool, agent: Agent[Any]) -> FunctionTool | None:
    """A copy of an `Agent.as_tool` tool that runs `agent` instead, or None if `tool` is not
    built as `Agent.as_tool` builds its tools in this SDK (its invoker's implementation closes
    over the agent as `self`)."""
    invoker = tool.on_invoke_tool
    if not isinstance(invoker, _FailureHandlingFunctionToolInvoker):
        return None
    impl = invoker._invoke_tool_impl
    if not isinstance(impl, types.FunctionType) or impl.__closure__ is None:
        return None
    names = impl.__code__.co_freevars
    if names.count("self") != 1:
        return None
    index = names.index("self")
    cells = impl.__closure__
    if cells[index].cell_contents is not tool._agent_instance:
        return None
    rebound = types.FunctionType(
        impl.__code__,
        impl.__globals__,
        impl.__name__,
        impl.__defaults__,
        (*cells[:index], types.CellType(agent), *cells[index + 1 :]),
    )
    rebound.__kwdefaults__ = impl.__kwdefaults__
    rebound.__qualname__ = impl.__qualname__
    rebound.__dict__.update(impl.__dict__)
    copied = copy.copy(tool)
    fresh = _FailureHandlingFunctionToolInvoker(rebound, invoker._on_handled_error)
    copied.on_invoke_tool = fresh.__agents_bind_function_tool__(copied)
    copied._agent_instance = agent
    return copied


def handoff_target(item: Handoff[Any, Any]) -> Agent[Any] | None:
    """The agent a `handoff(agent)` hands off to, when the SDK recorded it."""
    ref = item._agent_ref
    target = ref() if ref is not None else None
    return target if isinstance(target, Agent) else None


def retarget_handoff(item: Handoff[Any, Any], agent: Agent[Any]) -> None:
    """Make a (copied) handoff name `agent` as its target."""
    item._agent_ref = weakref.ref(agent)


def run_state_items(state: RunState[Any, Any]) -> list[RunItem]:
    """The run items a RunState holds (a run resumed from it repeats them in `new_items`)."""
    return list(state._generated_items)


def run_state_responses(state: RunState[Any, Any]) -> list[ModelResponse]:
    """The model responses a RunState holds (repeated in the resumed run's `raw_responses`)."""
    return list(state._model_responses)


def run_state_context(state: RunState[Any, Any]) -> RunContextWrapper[Any] | None:
    """The context wrapper a RunState records its approval decisions in."""
    return state._context


def run_cancelled(result: object) -> bool:
    """Whether `cancel()` was called on this streamed run (False for any other result)."""
    return getattr(result, "_cancel_mode", "none") != "none"


def run_state_agent(state: RunState[Any, Any]) -> Agent[Any] | None:
    """The agent a run resumed from this RunState goes on with."""
    agent = state._current_agent
    return agent if isinstance(agent, Agent) else None
