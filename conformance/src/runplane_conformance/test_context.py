"""CTX: lifecycle hooks and guardrails run as on the SDK's runner, with the caller's context.

Hooks are how programs log, meter and trace runs; guardrails read the context to decide; both must
see the object the program passed, and the hooks must fire in the SDK's order.
"""

from __future__ import annotations

from typing import Any

import pytest
from agents import (
    Agent,
    AgentHooks,
    GuardrailFunctionOutput,
    RunContextWrapper,
    RunHooks,
    Tool,
    function_tool,
    input_guardrail,
    output_guardrail,
)
from agents.items import ModelResponse, TResponseInputItem

from runplane import BackendRunner

from ._support import (
    MODES,
    AnyRunner,
    Ctx,
    Mode,
    execute,
    reference,
    reply,
    requirement,
    scripted,
    tool_calls,
)
from .plugin import ConformanceSettings

Record = tuple[str, ...]


class Recorder:
    """Shared by both hook kinds: what was called, in order, and every context seen."""

    def __init__(self) -> None:
        self.calls: list[Record] = []
        self.contexts: list[object] = []

    def add(self, wrapper: RunContextWrapper[Any], *call: str) -> None:
        self.calls.append(call)
        self.contexts.append(getattr(wrapper, "context", wrapper))


class RecordingRunHooks(RunHooks[Ctx]):
    def __init__(self, recorder: Recorder) -> None:
        self.r = recorder

    async def on_agent_start(self, context: Any, agent: Any) -> None:
        self.r.add(context, "on_agent_start", agent.name)

    async def on_agent_end(self, context: Any, agent: Any, output: Any) -> None:
        self.r.add(context, "on_agent_end", agent.name, repr(output))

    async def on_llm_start(
        self,
        context: RunContextWrapper[Ctx],
        agent: Agent[Ctx],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        self.r.add(context, "on_llm_start", agent.name, repr(system_prompt), str(len(input_items)))

    async def on_llm_end(
        self, context: RunContextWrapper[Ctx], agent: Agent[Ctx], response: ModelResponse
    ) -> None:
        self.r.add(context, "on_llm_end", agent.name)

    async def on_handoff(self, context: Any, from_agent: Any, to_agent: Any) -> None:
        self.r.add(context, "on_handoff", from_agent.name, to_agent.name)

    async def on_tool_start(self, context: Any, agent: Any, tool: Tool) -> None:
        self.r.add(context, "on_tool_start", agent.name, tool.name)

    async def on_tool_end(self, context: Any, agent: Any, tool: Tool, result: object) -> None:
        self.r.add(context, "on_tool_end", agent.name, tool.name, repr(result))


class RecordingAgentHooks(AgentHooks[Ctx]):
    def __init__(self, recorder: Recorder, owner: str) -> None:
        self.r = recorder
        self.owner = owner

    async def on_start(self, context: Any, agent: Any) -> None:
        self.r.add(context, self.owner, "on_start", agent.name)

    async def on_end(self, context: Any, agent: Any, output: Any) -> None:
        self.r.add(context, self.owner, "on_end", agent.name, repr(output))

    async def on_handoff(self, context: Any, agent: Any, source: Any) -> None:
        self.r.add(context, self.owner, "on_handoff", agent.name, source.name)

    async def on_tool_start(self, context: Any, agent: Any, tool: Tool) -> None:
        self.r.add(context, self.owner, "on_tool_start", agent.name, tool.name)

    async def on_tool_end(self, context: Any, agent: Any, tool: Tool, result: object) -> None:
        self.r.add(context, self.owner, "on_tool_end", agent.name, tool.name, repr(result))

    async def on_llm_start(
        self,
        context: RunContextWrapper[Ctx],
        agent: Agent[Ctx],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        self.r.add(context, self.owner, "on_llm_start", agent.name, str(len(input_items)))

    async def on_llm_end(
        self, context: RunContextWrapper[Ctx], agent: Agent[Ctx], response: ModelResponse
    ) -> None:
        self.r.add(context, self.owner, "on_llm_end", agent.name)


def hooked_run(runner: AnyRunner, mode: Mode, kind: str, timeout: float) -> tuple[Ctx, Recorder]:
    """A tool call, a handoff and a reply, with run hooks or with agent hooks on both agents."""

    @function_tool
    async def lookup(order: str) -> str:
        return f"order {order} shipped"

    recorder = Recorder()
    model = scripted(
        tool_calls(("lookup", {"order": "42"}, "call-lookup")),
        tool_calls(("transfer_to_billing", {}, "call-handoff")),
        reply("Refund issued."),
    )
    agent_hooks = kind == "agent"
    billing: Agent[Ctx] = Agent(
        name="billing",
        instructions="Handle billing.",
        model=model,
        hooks=RecordingAgentHooks(recorder, "billing") if agent_hooks else None,
    )
    triage: Agent[Ctx] = Agent(
        name="triage",
        instructions="Route the customer.",
        model=model,
        tools=[lookup],
        handoffs=[billing],
        hooks=RecordingAgentHooks(recorder, "triage") if agent_hooks else None,
    )
    ctx = Ctx()
    hooks = None if agent_hooks else RecordingRunHooks(recorder)
    execute(runner, mode, triage, "Refund order 42", context=ctx, hooks=hooks, timeout=timeout)
    return ctx, recorder


@requirement("CTX-1")
@pytest.mark.parametrize("mode", MODES)
def test_run_hooks_fire_like_the_sdk(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    _, expected = hooked_run(reference(), mode, "run", runplane_settings.timeout)
    _, got = hooked_run(runplane_backend, mode, "run", runplane_settings.timeout)
    assert got.calls == expected.calls


@requirement("CTX-1")
@pytest.mark.parametrize("mode", MODES)
def test_run_hooks_see_the_callers_context(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    ctx, got = hooked_run(runplane_backend, mode, "run", runplane_settings.timeout)
    assert got.contexts, "no RunHooks method was called"
    foreign = [c for c, seen in zip(got.calls, got.contexts, strict=True) if seen is not ctx]
    assert not foreign, f"hooks that did not get the caller's context object: {foreign}"


@requirement("CTX-2")
@pytest.mark.parametrize("mode", MODES)
def test_agent_hooks_fire_like_the_sdk(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    _, expected = hooked_run(reference(), mode, "agent", runplane_settings.timeout)
    _, got = hooked_run(runplane_backend, mode, "agent", runplane_settings.timeout)
    assert got.calls == expected.calls


@requirement("CTX-2")
@pytest.mark.parametrize("mode", MODES)
def test_agent_hooks_see_the_callers_context(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    ctx, got = hooked_run(runplane_backend, mode, "agent", runplane_settings.timeout)
    assert got.contexts, "no AgentHooks method was called"
    foreign = [c for c, seen in zip(got.calls, got.contexts, strict=True) if seen is not ctx]
    assert not foreign, f"hooks that did not get the caller's context object: {foreign}"


@requirement("CTX-3")
@pytest.mark.parametrize("mode", MODES)
def test_guardrails_see_the_callers_context(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    seen: dict[str, object] = {}

    @input_guardrail
    def screen_input(
        wrapper: RunContextWrapper[Ctx], agent: Agent[Ctx], data: str | list[TResponseInputItem]
    ) -> GuardrailFunctionOutput:
        seen["input"] = getattr(wrapper, "context", wrapper)
        return GuardrailFunctionOutput(output_info="fine", tripwire_triggered=False)

    @output_guardrail
    def screen_output(
        wrapper: RunContextWrapper[Ctx], agent: Agent[Ctx], output: Any
    ) -> GuardrailFunctionOutput:
        seen["output"] = getattr(wrapper, "context", wrapper)
        return GuardrailFunctionOutput(output_info="fine", tripwire_triggered=False)

    agent: Agent[Ctx] = Agent(
        name="assistant",
        model=scripted(reply("All good.")),
        input_guardrails=[screen_input],
        output_guardrails=[screen_output],
    )
    ctx = Ctx()
    execute(runplane_backend, mode, agent, "hi", context=ctx, timeout=runplane_settings.timeout)
    assert set(seen) == {"input", "output"}, f"guardrails that ran: {sorted(seen)}"
    for kind, got in seen.items():
        assert got is ctx, f"the {kind} guardrail's context is {got!r}, not the caller's {ctx!r}"
