"""TOOLCTX: function tools get the SDK's ToolContext for their call, around the caller's context.

Tools read `ctx.context` for the application's state (database handles, the user, ...) and
`ctx.tool_call_id` to correlate with the model's call; a backend that passes None, a bare
RunContextWrapper, or a copy of the context breaks such tools at the first call.
"""

from __future__ import annotations

import dataclasses

import pytest
from agents import Agent, Tool, function_tool
from agents.tool_context import ToolContext

from runplane import BackendRunner

from ._support import MODES, Ctx, Mode, execute, reply, requirement, scripted, tool_calls
from .plugin import ConformanceSettings

MISSING = "<missing>"


@dataclasses.dataclass(frozen=True)
class Seen:
    """What a tool saw, captured during the call (the SDK may reuse the object later)."""

    ctx: object
    tool_name: object
    tool_call_id: object
    tool_arguments: object
    context: object

    @classmethod
    def of(cls, ctx: object) -> Seen:
        return cls(
            ctx,
            getattr(ctx, "tool_name", MISSING),
            getattr(ctx, "tool_call_id", MISSING),
            getattr(ctx, "tool_arguments", MISSING),
            getattr(ctx, "context", MISSING),
        )


def recording_tools(seen: list[Seen]) -> list[Tool]:
    """An async tool and a sync one (the SDK runs sync tools in worker threads)."""

    @function_tool
    async def get_weather(ctx: ToolContext[Ctx], city: str) -> str:
        seen.append(Seen.of(ctx))
        return f"sunny in {city}"

    @function_tool
    def get_time(ctx: ToolContext[Ctx], zone: str) -> str:
        seen.append(Seen.of(ctx))
        return f"noon in {zone}"

    return [get_weather, get_time]


def run_single(backend: type[BackendRunner], mode: Mode, timeout: float) -> tuple[Ctx, list[Seen]]:
    seen: list[Seen] = []
    agent: Agent[Ctx] = Agent(
        name="assistant",
        tools=recording_tools(seen),
        model=scripted(
            tool_calls(("get_weather", {"city": "Paris"}, "call-weather")), reply("done")
        ),
    )
    ctx = Ctx()
    execute(backend, mode, agent, "weather?", context=ctx, timeout=timeout)
    assert len(seen) == 1, f"the tool was called {len(seen)} times instead of once"
    return ctx, seen


@requirement("TOOLCTX-1")
@pytest.mark.parametrize("mode", MODES)
def test_tool_receives_tool_context(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    _, seen = run_single(runplane_backend, mode, runplane_settings.timeout)
    got = seen[0].ctx
    assert isinstance(got, ToolContext), (
        f"the tool received {got!r} ({type(got).__qualname__}), not an agents ToolContext"
    )


@requirement("TOOLCTX-2")
@pytest.mark.parametrize("mode", MODES)
def test_tool_context_describes_the_call(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    _, seen = run_single(runplane_backend, mode, runplane_settings.timeout)
    got = seen[0]
    assert (got.tool_name, got.tool_call_id, got.tool_arguments) == (
        "get_weather",
        "call-weather",
        '{"city":"Paris"}',
    )


@requirement("TOOLCTX-3")
@pytest.mark.parametrize("mode", MODES)
def test_tool_context_holds_the_callers_context(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    ctx, seen = run_single(runplane_backend, mode, runplane_settings.timeout)
    assert seen[0].context is ctx, (
        f"ToolContext.context is {seen[0].context!r}, not the caller's context object {ctx!r}"
    )


@requirement("TOOLCTX-4")
@pytest.mark.parametrize("mode", MODES)
def test_parallel_tool_calls_get_their_own_tool_context(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    seen: list[Seen] = []
    agent: Agent[Ctx] = Agent(
        name="assistant",
        tools=recording_tools(seen),
        model=scripted(
            tool_calls(
                ("get_weather", {"city": "Oslo"}, "call-1"),
                ("get_time", {"zone": "CET"}, "call-2"),
            ),
            reply("done"),
        ),
    )
    ctx = Ctx()
    execute(runplane_backend, mode, agent, "both?", context=ctx, timeout=runplane_settings.timeout)
    by_call = {s.tool_call_id: s for s in seen}
    assert len(seen) == 2, f"two calls in one response ran {len(seen)} tool invocations"
    assert sorted(map(str, by_call)) == ["call-1", "call-2"], f"tool_call_ids: {list(by_call)}"
    for call_id, name, arguments in (
        ("call-1", "get_weather", '{"city":"Oslo"}'),
        ("call-2", "get_time", '{"zone":"CET"}'),
    ):
        got = by_call[call_id]
        assert isinstance(got.ctx, ToolContext), f"{call_id} received {got.ctx!r}"
        assert (got.tool_name, got.tool_arguments) == (name, arguments)
        assert got.context is ctx, f"{call_id}: ToolContext.context is not the caller's context"
    assert by_call["call-1"].ctx is not by_call["call-2"].ctx, "both calls shared one ToolContext"
