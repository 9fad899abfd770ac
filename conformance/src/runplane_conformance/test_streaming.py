"""STREAM: run_streamed returns at once and delivers the SDK's events while the run is going on.

Programs call `result = Runner.run_streamed(...)` without `await` and then iterate
`result.stream_events()` to show progress; an `async def run_streamed` hands them a coroutine, and
a backend that collects events until the run ends turns a progress display into a frozen screen.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import warnings
from typing import Any

from agents import Agent, FunctionTool, RunResultStreaming, function_tool
from agents.items import ToolCallOutputItem
from agents.stream_events import (
    AgentUpdatedStreamEvent,
    RawResponsesStreamEvent,
    RunItemStreamEvent,
    StreamEvent,
)

from runplane import BackendRunner

from ._support import (
    AnyRunner,
    Ctx,
    consume,
    event_signature,
    execute,
    not_streaming,
    reference,
    reply,
    requirement,
    run_in_loop,
    scripted,
    tool_calls,
)
from .plugin import ConformanceSettings


def gated_tool(gate: threading.Event, wait: float) -> FunctionTool:
    """A tool that returns "released" once `gate` is set, or "timed out" after `wait` seconds.

    The gate is a threading.Event, waited for in a worker thread, so the check also works for
    backends that run tools on another thread or event loop.
    """

    @function_tool
    async def wait_for_consumer() -> str:
        released = await asyncio.to_thread(gate.wait, wait)
        return "released" if released else "timed out"

    return wait_for_consumer


def gated_agent(gate: threading.Event, wait: float) -> Agent[Ctx]:
    return Agent(
        name="assistant",
        tools=[gated_tool(gate, wait)],
        model=scripted(tool_calls(("wait_for_consumer", {}, "call-gate")), reply("done")),
    )


def tool_output(result: RunResultStreaming) -> object:
    outputs = [item.output for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    return outputs[0] if len(outputs) == 1 else outputs


@requirement("STREAM-1")
def test_run_streamed_is_not_a_coroutine_function(
    runplane_backend: type[BackendRunner],
) -> None:
    for owner in (runplane_backend, runplane_backend.backend()):
        method = owner.run_streamed
        assert not inspect.iscoroutinefunction(method), f"{owner!r}.run_streamed is `async def`"
        assert not inspect.isasyncgenfunction(method), f"{owner!r}.run_streamed is an async gen"


@requirement("STREAM-1")
def test_run_streamed_returns_at_once(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    """The run is blocked in a tool until run_streamed has returned: returning late times out."""
    gate = threading.Event()
    agent = gated_agent(gate, runplane_settings.timeout / 2)

    async def main() -> RunResultStreaming:
        result: Any = runplane_backend.run_streamed(agent, "go")
        gate.set()
        assert isinstance(result, RunResultStreaming), not_streaming(result)
        assert not inspect.isawaitable(result), "run_streamed returned an awaitable"
        await consume(result)
        return result

    result = run_in_loop(main(), runplane_settings.timeout, "run_streamed()")
    assert tool_output(result) == "released", (
        "run_streamed returned only after the run had finished (the tool waited for it in vain)"
    )
    assert result.is_complete
    assert result.final_output == "done"


def streamed_from_sync_code(runner: AnyRunner, timeout: float) -> tuple[str, object]:
    """Call run_streamed with no running event loop; consume with asyncio.run if it returns."""
    agent: Agent[Ctx] = Agent(name="assistant", model=scripted(reply("hello")))
    with warnings.catch_warnings():
        # The SDK's runner creates its loop task before failing without a loop, and Python then
        # warns that the task's coroutine was never awaited: not this test's business.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result: Any = runner.run_streamed(agent, "hi")
        except RuntimeError as exc:
            outcome: tuple[str, object] = ("raised", type(exc))
        else:
            if not isinstance(result, RunResultStreaming):
                outcome = ("returned", not_streaming(result))
            else:
                run_in_loop(consume(result), timeout, "consuming run_streamed() events")
                outcome = ("streamed", result.final_output)
        gc.collect()
    return outcome


@requirement("STREAM-2")
def test_run_streamed_from_sync_code(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    """Like the SDK's runner; a backend may also make it work where the SDK raises.

    openai-agents 0.24 raises RuntimeError ("no running event loop") here, so programs written for
    it call run_streamed inside a running loop; a backend that instead returns a result whose
    events `asyncio.run` can consume afterwards breaks none of them.
    """
    expected = streamed_from_sync_code(reference(), runplane_settings.timeout)
    got = streamed_from_sync_code(runplane_backend, runplane_settings.timeout)
    assert got in (expected, ("streamed", "hello")), (
        f"run_streamed from sync code: the SDK's runner gives {expected}, the backend {got}"
    )


@requirement("STREAM-3")
def test_events_arrive_while_the_run_is_going_on(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    """The tool waits until the consumer has received its tool_called event: buffering deadlocks.

    The wait is bounded (half of --runplane-timeout), so a buffering backend fails, not hangs.
    """
    gate = threading.Event()
    wait = runplane_settings.timeout / 2
    agent = gated_agent(gate, wait)
    complete_at_first_event: list[bool] = []

    async def main() -> RunResultStreaming:
        result = runplane_backend.run_streamed(agent, "go")
        async for event in result.stream_events():
            if not complete_at_first_event:
                complete_at_first_event.append(result.is_complete)
            if isinstance(event, RunItemStreamEvent) and event.name == "tool_called":
                gate.set()
        return result

    result = run_in_loop(main(), runplane_settings.timeout, "run_streamed() and its events")
    assert tool_output(result) == "released", (
        f"the tool waited {wait:g}s for the consumer to receive its tool_called event, which "
        "arrived only after the run had finished: the backend buffers stream events"
    )
    assert complete_at_first_event == [False], "the first event arrived after the run had finished"


SDK_EVENT_NAMES = {"tool_called", "tool_output", "handoff_requested", "handoff_occured"}


def tour_agent(seen_tools: list[str]) -> Agent[Ctx]:
    """A run with a tool call, a handoff and a final message: every common event kind."""

    @function_tool
    async def lookup(topic: str) -> str:
        seen_tools.append(topic)
        return f"facts about {topic}"

    model = scripted(
        tool_calls(("lookup", {"topic": "tides"}, "call-lookup")),
        tool_calls(("transfer_to_writer", {}, "call-handoff")),
        reply("Tides follow the moon."),
    )
    writer: Agent[Ctx] = Agent(name="writer", model=model)
    return Agent(name="researcher", model=model, tools=[lookup], handoffs=[writer])


def stream_tour(runner: AnyRunner, timeout: float) -> list[StreamEvent]:
    return execute(runner, "run_streamed", tour_agent([]), "explain tides", timeout=timeout).events


@requirement("STREAM-4")
def test_events_have_sdk_types_and_names(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    events = stream_tour(runplane_backend, runplane_settings.timeout)
    kinds = (RawResponsesStreamEvent, RunItemStreamEvent, AgentUpdatedStreamEvent)
    foreign = [describe_event(e) for e in events if not isinstance(e, kinds)]
    assert not foreign, f"events that are not the SDK's stream event types: {foreign}"
    assert events, "no events"
    first = events[0]
    assert isinstance(first, AgentUpdatedStreamEvent), f"first event: {describe_event(first)}"
    assert first.new_agent.name == "researcher"
    names = {e.name for e in events if isinstance(e, RunItemStreamEvent)}
    assert names >= {*SDK_EVENT_NAMES, "message_output_created"}, f"item event names: {names}"
    updated = [e.new_agent.name for e in events if isinstance(e, AgentUpdatedStreamEvent)]
    assert updated == ["researcher", "writer"], f"agent_updated events: {updated}"
    assert any(isinstance(e, RawResponsesStreamEvent) for e in events), "no raw response events"


@requirement("STREAM-4")
def test_events_match_the_sdk_in_order(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    expected = [event_signature(e) for e in stream_tour(reference(), runplane_settings.timeout)]
    got = [event_signature(e) for e in stream_tour(runplane_backend, runplane_settings.timeout)]
    assert got == expected


def describe_event(event: object) -> str:
    return f"{type(event).__module__}.{type(event).__qualname__}"
