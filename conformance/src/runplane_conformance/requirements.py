"""The requirement ids the suite checks, each with the one line the failure summary prints.

docs/conformance.md holds the full table (what is required and why); the project's tests check that
the two lists and the markers on the tests name the same ids, so none can drift.
"""

from __future__ import annotations

__all__ = ["DURABLE_REQUIREMENTS", "MARKER", "REQUIREMENTS"]

MARKER = "runplane_requirement"
"""`@pytest.mark.runplane_requirement("TOOLCTX-1")`: the requirement a test checks."""

REQUIREMENTS: dict[str, str] = {
    "API-1": "run and run_sync return agents.RunResult; run_streamed returns RunResultStreaming",
    "TOOLCTX-1": "function tools receive an agents.tool_context.ToolContext",
    "TOOLCTX-2": "the ToolContext carries the call's tool_name, tool_call_id and tool_arguments",
    "TOOLCTX-3": "ToolContext.context is the very object the caller passed as context",
    "TOOLCTX-4": "parallel tool calls each get their own ToolContext with the caller's context",
    "STREAM-1": "run_streamed is a plain function that returns RunResultStreaming at once",
    "STREAM-2": "run_streamed from sync code without a running loop behaves as the SDK's does",
    "STREAM-3": "stream events reach the consumer live, before the run finishes",
    "STREAM-4": "stream events have the SDK's types, names and order",
    "INSTR-1": "callable instructions, sync and async, are called with (RunContextWrapper, Agent)",
    "INSTR-2": "the instructions' RunContextWrapper.context is the caller's context object",
    "INSTR-3": "an exception raised in instructions reaches the caller unchanged",
    "CTX-1": "RunHooks are called as the SDK calls them, with the caller's context",
    "CTX-2": "AgentHooks are called as the SDK calls them, with the caller's context",
    "CTX-3": "input and output guardrails receive the caller's context",
    "ERR-1": "running out of max_turns raises MaxTurnsExceeded",
    "ERR-2": "a tripped input guardrail raises InputGuardrailTripwireTriggered",
    "ERR-3": "a tripped output guardrail raises OutputGuardrailTripwireTriggered",
    "ERR-4": "a call to a tool that does not exist raises ModelBehaviorError",
    "ERR-5": "a tool failure without failure_error_function raises UserError",
    "ERR-6": "an exception raised by the model reaches the caller unchanged",
    "ERRH-1": "error_handlers are honoured (a max_turns handler's output is the final output)",
    "PARITY-1": "run gives the SDK runner's result on generated scripts",
    "PARITY-2": "run_sync gives the SDK runner's result on generated scripts",
    "PARITY-3": "run_streamed gives the SDK runner's result and events on generated scripts",
    "BRIDGE-1": "host events (runplane.bridge) equal the direct backend's on generated scripts",
    "BRIDGE-2": "bridge(result) yields a streamed run's host events as the hook gets them",
    "DUR-1": "a run killed -9 at a step boundary resumes under its id to the uninterrupted result",
    "DUR-2": "no tool whose output was recorded runs again; the tool in flight runs again, once",
    "DUR-3": "no recorded model call is made again: only the turns after the kill reach the model",
    "DUR-4": "resuming with a changed program raises a divergence error and runs nothing",
    "DUR-5": "a killed run's history is readable: steps in order, the tool in flight unfinished",
}

DURABLE_REQUIREMENTS = frozenset(rid for rid in REQUIREMENTS if rid.startswith("DUR-"))
"""The durability profile's requirements: checked only with `--runplane-durable`."""
