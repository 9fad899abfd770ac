"""Backends that each get exactly one thing wrong, to prove the conformance suite catches it.

Every backend here runs the SDK's own loop (`runplane.sdk_runner()`) and introduces one defect:
the ones of the "AgentspanRunner" rejected in openai-agents PR #2923 (tools invoked with None,
`async def run_streamed`, instructions called without arguments and their errors swallowed) and
similar ones. `EXPECTED_FAILURES` names the requirement ids whose tests each one must fail.

Register them with `runplane.register_plugin(defective_backends)`: this module is the plugin.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from agents import Agent, FunctionTool, RunContextWrapper, RunResult, RunResultStreaming
from agents.exceptions import AgentsException
from agents.result import RunResultBase
from agents.stream_events import StreamEvent
from agents.tool_context import ToolContext
from agents.usage import Usage

import runplane
from runplane import sdk_runner

Kwargs = dict[str, Any]
ResultT = TypeVar("ResultT", bound=RunResultBase)


def map_agents(agent: Agent[Any], change: Callable[[Agent[Any]], Kwargs]) -> Agent[Any]:
    """Clone `agent` and every agent reachable through its handoffs, changing each clone."""
    clones: dict[int, Agent[Any]] = {}

    def visit(original: Agent[Any]) -> Agent[Any]:
        if id(original) in clones:
            return clones[id(original)]
        clone = original.clone(**change(original))
        clones[id(original)] = clone
        clone.handoffs = [visit(h) if isinstance(h, Agent) else h for h in original.handoffs]
        return clone

    return visit(agent)


def map_function_tools(
    agent: Agent[Any], wrap: Callable[[FunctionTool], Callable[[Any, str], Any]]
) -> Agent[Any]:
    def change(a: Agent[Any]) -> Kwargs:
        tools = [
            dataclasses.replace(t, on_invoke_tool=wrap(t)) if isinstance(t, FunctionTool) else t
            for t in a.tools
        ]
        return {"tools": tools}

    return map_agents(agent, change)


def replace_stream(
    result: RunResultStreaming,
    stream: Callable[[AsyncIterator[StreamEvent]], AsyncIterator[StreamEvent]],
) -> RunResultStreaming:
    """Give the SDK's own result a different `stream_events()` (as runplane's observers do)."""
    original = result.stream_events

    def stream_events() -> AsyncIterator[StreamEvent]:
        return stream(original())

    result.stream_events = stream_events  # type: ignore[method-assign]
    return result


class SDKBackend:
    """The SDK's loop, with hooks for one defect: change the agent, options, result or stream."""

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        return agent

    def options(self, kwargs: Kwargs) -> Kwargs:
        return kwargs

    def result(self, result: RunResult) -> RunResult:
        return result

    def stream(self, result: RunResultStreaming) -> RunResultStreaming:
        return result

    async def run(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        agent, options = self.agent(starting_agent), self.options(kwargs)
        return self.result(await sdk_runner().run(agent, input, **options))

    def run_sync(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        agent, options = self.agent(starting_agent), self.options(kwargs)
        return self.result(sdk_runner().run_sync(agent, input, **options))

    def run_streamed(
        self, starting_agent: Agent[Any], input: Any, **kwargs: Any
    ) -> RunResultStreaming:
        agent, options = self.agent(starting_agent), self.options(kwargs)
        return self.stream(sdk_runner().run_streamed(agent, input, **options))


def naive_tools(agent: Agent[Any], context_for: Callable[[ToolContext[Any]], Any]) -> Agent[Any]:
    """Tools called the way a backend that dispatches Python functions itself would call them.

    The function behind each `@function_tool` gets `context_for(tool_context)` as its context
    argument, if it takes one, and the model's JSON arguments as keywords.
    """

    def wrap(tool: FunctionTool) -> Callable[[Any, str], Any]:
        original = tool.on_invoke_tool
        try:
            function: Callable[..., Any] = tool.__wrapped__
        except AttributeError:
            return original

        async def invoke(ctx: ToolContext[Any], arguments: str) -> Any:
            kwargs = json.loads(arguments or "{}")
            params = list(inspect.signature(function).parameters)
            args = [context_for(ctx)] if params and params[0] not in kwargs else []
            result = function(*args, **kwargs)
            return str(await result if inspect.isawaitable(result) else result)

        return invoke

    return map_function_tools(agent, wrap)


class ToolContextNone(SDKBackend):
    """AgentspanRunner: function tools are invoked with None instead of a ToolContext."""

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        return naive_tools(agent, lambda ctx: None)


class PlainRunContext(SDKBackend):
    """Tools get a bare RunContextWrapper around the right context: no tool_name, no call id."""

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        return naive_tools(agent, lambda ctx: RunContextWrapper(context=ctx.context))


class AsyncRunStreamed(SDKBackend):
    """AgentspanRunner: `async def run_streamed`, so callers get a coroutine."""

    async def run_streamed(  # type: ignore[override]
        self, starting_agent: Agent[Any], input: Any, **kwargs: Any
    ) -> RunResultStreaming:
        return sdk_runner().run_streamed(starting_agent, input, **kwargs)


class InstructionsWithoutArguments(SDKBackend):
    """AgentspanRunner: callable instructions are called with no arguments."""

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        def change(a: Agent[Any]) -> Kwargs:
            original = a.instructions
            if not callable(original):
                return {}
            call: Any = original
            return {"instructions": lambda wrapper, agent: call()}

        return map_agents(agent, change)


class InstructionsErrorsSwallowed(SDKBackend):
    """AgentspanRunner: an exception in callable instructions becomes "no instructions"."""

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        def change(a: Agent[Any]) -> Kwargs:
            original = a.instructions
            if not callable(original):
                return {}
            call: Any = original

            async def forgiving(wrapper: Any, agent: Any) -> str | None:
                try:
                    result = call(wrapper, agent)
                    return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]
                except Exception:
                    return None

            return {"instructions": forgiving}

        return map_agents(agent, change)


class ContextDropped(SDKBackend):
    """The run gets a copy of the caller's context (as after a serialisation round trip)."""

    def options(self, kwargs: Kwargs) -> Kwargs:
        return {**kwargs, "context": copy.copy(kwargs.get("context"))}


def swallowed(kwargs: Kwargs, agent: Agent[Any], input: Any, exc: Exception) -> RunResult:
    """The result a forgiving backend makes up for a failed run."""
    data = exc.run_data if isinstance(exc, AgentsException) else None
    context = data.context_wrapper if data is not None else RunContextWrapper(kwargs.get("context"))
    return RunResult(
        input=input,
        new_items=list(data.new_items) if data is not None else [],
        raw_responses=list(data.raw_responses) if data is not None else [],
        final_output=None,
        input_guardrail_results=[],
        output_guardrail_results=[],
        tool_input_guardrail_results=[],
        tool_output_guardrail_results=[],
        context_wrapper=context,
        _last_agent=data.last_agent if data is not None else agent,
    )


class ErrorsSwallowed(SDKBackend):
    """A failed run returns a result (final_output None) instead of raising; streams just end."""

    async def run(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        try:
            return await sdk_runner().run(starting_agent, input, **kwargs)
        except Exception as exc:
            return swallowed(kwargs, starting_agent, input, exc)

    def run_sync(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        try:
            return sdk_runner().run_sync(starting_agent, input, **kwargs)
        except Exception as exc:
            return swallowed(kwargs, starting_agent, input, exc)

    def stream(self, result: RunResultStreaming) -> RunResultStreaming:
        async def quietly(events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
            try:
                async for event in events:
                    yield event
            except Exception:
                return

        return replace_stream(result, quietly)


class BackendRunError(RuntimeError):
    """The one exception type a retyping backend raises."""


class ErrorsRetyped(SDKBackend):
    """Every failure is re-raised as the backend's own exception type (message kept)."""

    async def run(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        try:
            return await sdk_runner().run(starting_agent, input, **kwargs)
        except Exception as exc:
            raise BackendRunError(str(exc)) from exc

    def run_sync(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        try:
            return sdk_runner().run_sync(starting_agent, input, **kwargs)
        except Exception as exc:
            raise BackendRunError(str(exc)) from exc

    def stream(self, result: RunResultStreaming) -> RunResultStreaming:
        async def retyped(events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
            try:
                async for event in events:
                    yield event
            except Exception as exc:
                raise BackendRunError(str(exc)) from exc

        return replace_stream(result, retyped)


class BufferedStream(SDKBackend):
    """Stream events are collected until the run ends, then replayed in the right order."""

    def stream(self, result: RunResultStreaming) -> RunResultStreaming:
        async def buffered(events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
            collected = [event async for event in events]
            for event in collected:
                yield event

        return replace_stream(result, buffered)


class HooksDropped(SDKBackend):
    """RunHooks are not passed on."""

    def options(self, kwargs: Kwargs) -> Kwargs:
        return {**kwargs, "hooks": None}


class ErrorHandlersDropped(SDKBackend):
    """error_handlers are not passed on."""

    def options(self, kwargs: Kwargs) -> Kwargs:
        return {**kwargs, "error_handlers": None}


class UsageDropped(SDKBackend):
    """The run's usage totals are lost (as when usage is not carried back from a worker)."""

    def result(self, result: RunResult) -> RunResult:
        return forget_usage(result)

    def stream(self, result: RunResultStreaming) -> RunResultStreaming:
        async def then_forget(events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
            async for event in events:
                yield event
            forget_usage(result)

        return replace_stream(result, then_forget)


def forget_usage(result: ResultT) -> ResultT:
    result.context_wrapper.usage = Usage()
    return result


DEFECTS: dict[str, type[SDKBackend]] = {
    "defect-tool-context-none": ToolContextNone,
    "defect-plain-run-context": PlainRunContext,
    "defect-async-run-streamed": AsyncRunStreamed,
    "defect-instructions-without-arguments": InstructionsWithoutArguments,
    "defect-instructions-errors-swallowed": InstructionsErrorsSwallowed,
    "defect-context-dropped": ContextDropped,
    "defect-errors-swallowed": ErrorsSwallowed,
    "defect-errors-retyped": ErrorsRetyped,
    "defect-buffered-stream": BufferedStream,
    "defect-hooks-dropped": HooksDropped,
    "defect-error-handlers-dropped": ErrorHandlersDropped,
    "defect-usage-dropped": UsageDropped,
}

# The requirements whose tests each defect must fail (it may fail others as a consequence).
EXPECTED_FAILURES: dict[str, set[str]] = {
    "defect-tool-context-none": {"TOOLCTX-1", "TOOLCTX-2", "TOOLCTX-3", "TOOLCTX-4"},
    "defect-plain-run-context": {"TOOLCTX-1", "TOOLCTX-2", "TOOLCTX-4"},
    "defect-async-run-streamed": {"STREAM-1", "STREAM-2", "STREAM-3", "STREAM-4", "PARITY-3"},
    "defect-instructions-without-arguments": {"INSTR-1", "INSTR-2", "INSTR-3"},
    "defect-instructions-errors-swallowed": {"INSTR-3"},
    "defect-context-dropped": {"TOOLCTX-3", "TOOLCTX-4", "INSTR-2", "CTX-1", "CTX-2", "CTX-3"},
    "defect-errors-swallowed": {
        "INSTR-3",
        "ERR-1",
        "ERR-2",
        "ERR-3",
        "ERR-4",
        "ERR-5",
        "ERR-6",
        "PARITY-1",
        "PARITY-2",
        "PARITY-3",
    },
    "defect-errors-retyped": {
        "INSTR-3",
        "ERR-1",
        "ERR-2",
        "ERR-3",
        "ERR-4",
        "ERR-5",
        "ERR-6",
        "PARITY-1",
        "PARITY-2",
        "PARITY-3",
    },
    "defect-buffered-stream": {"STREAM-3"},
    "defect-hooks-dropped": {"CTX-1"},
    "defect-error-handlers-dropped": {"ERRH-1"},
    "defect-usage-dropped": {"PARITY-1", "PARITY-2", "PARITY-3"},
}


@runplane.hookimpl
def runplane_backends() -> Mapping[str, Callable[[], Any]]:
    """Each defect under its name; runplane checks that each is a RunnerBackend."""
    return dict(DEFECTS)
