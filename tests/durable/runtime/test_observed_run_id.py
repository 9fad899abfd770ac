"""Observers see a durable run under its durable id, so telemetry joins `runplane runs show`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent
from agents.result import RunResultBase
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, last_run_id, run_id
from runplane_durable.names import tool_key
from runplane_durable.runtime.identity import nested_run_id
from support.backends import BackendPlugin, RecordingBackend
from support.durable_faults import Routed

import runplane
from runplane import RunInfo

NAME = "durable-observed"


class Observer:
    def __init__(self) -> None:
        self.started: list[RunInfo] = []
        self.finished: list[RunInfo] = []

    @runplane.hookimpl
    def runplane_run_started(self, run: RunInfo) -> None:
        self.started.append(run)

    @runplane.hookimpl
    def runplane_run_finished(
        self, run: RunInfo, result: RunResultBase | None, error: BaseException | None
    ) -> None:
        self.finished.append(run)


@pytest.fixture
def observer(sqlite_backend: DurableBackend) -> Iterator[Observer]:
    obs = Observer()
    names = [
        runplane.register_plugin(obs, name="test-run-id-observer"),
        runplane.register_plugin(BackendPlugin({NAME: lambda: sqlite_backend}), name=NAME),
    ]
    yield obs
    for name in names:
        runplane.default_registry().unregister(name)


def _agent(answer: str = "hi") -> Agent[Any]:
    return Agent(name="greeter", model=ScriptedModel([[assistant_message(answer)]]))


async def _streamed(agent: Agent[Any]) -> Any:
    result = runplane.runner(NAME).run_streamed(agent, "x")
    async for _ in result.stream_events():
        pass
    return result.final_output


def _run(mode: str, agent: Agent[Any]) -> Any:
    Runner = runplane.runner(NAME)
    if mode == "run":
        return asyncio.run(Runner.run(agent, "x")).final_output
    if mode == "run_sync":
        return Runner.run_sync(agent, "x").final_output
    return asyncio.run(_streamed(agent))


MODES = ("run", "run_sync", "run_streamed")


@pytest.mark.parametrize("mode", MODES)
def test_a_named_run_is_observed_under_its_name(observer: Observer, mode: str) -> None:
    with run_id(f"named-{mode}"):
        assert _run(mode, _agent()) == "hi"
    assert [r.run_id for r in observer.started] == [f"named-{mode}"]
    assert [r.run_id for r in observer.finished] == [f"named-{mode}"]


@pytest.mark.parametrize("mode", MODES)
def test_an_unnamed_run_is_observed_under_the_id_it_was_given(
    observer: Observer, sqlite_backend: DurableBackend, mode: str
) -> None:
    if mode == "run_sync":
        _run(mode, _agent())
        generated = last_run_id()
    else:  # last_run_id is per context: asyncio.run's task context is a copy

        async def go() -> str | None:
            Runner = runplane.runner(NAME)
            if mode == "run":
                await Runner.run(_agent(), "x")
            else:
                result = Runner.run_streamed(_agent(), "x")
                async for _ in result.stream_events():
                    pass
            return last_run_id()

        generated = asyncio.run(go())
    assert generated is not None
    assert generated.startswith("run_")
    assert [r.run_id for r in observer.started] == [generated]
    assert [r.run_id for r in observer.finished] == [generated]
    assert asyncio.run(sqlite_backend.get_run(generated)).status == "completed"


def test_two_unnamed_runs_are_two_ids(observer: Observer) -> None:
    _run("run_sync", _agent("a"))
    _run("run_sync", _agent("b"))
    first, second = (r.run_id for r in observer.started)
    assert first != second


def test_a_nested_run_is_observed_under_its_derived_id(
    observer: Observer, sqlite_backend: DurableBackend
) -> None:
    inner = Agent(name="inner", model=ScriptedModel([[assistant_message("inner answer")]]))
    outer = Agent(
        name="outer",
        tools=[inner.as_tool(tool_name="ask_inner", tool_description="Ask the inner agent.")],
        model=ScriptedModel(
            [[function_call("ask_inner", {"input": "q"}, call_id="n1")], [assistant_message("ok")]]
        ),
    )
    with Routed(sqlite_backend, "durable-observed-nested"), run_id("boss"):
        import agents

        assert agents.Runner.run_sync(outer, "go").final_output == "ok"
    child = nested_run_id("boss", tool_key(1, "n1"))
    assert [r.run_id for r in observer.started] == ["boss", child]
    assert asyncio.run(sqlite_backend.get_run(child)).status == "completed"


def test_a_backend_that_reserves_no_id_gets_a_random_one_per_run(observer: Observer) -> None:
    registry_name = runplane.register_plugin(
        BackendPlugin({"plain": RecordingBackend}), name="test-plain"
    )
    try:
        Runner = runplane.runner("plain")
        Runner.run_sync(_agent("a"), "x")
        Runner.run_sync(_agent("b"), "x")
    finally:
        runplane.default_registry().unregister(registry_name)
    first, second = (r.run_id for r in observer.started)
    assert len(first) == 32
    assert first != second


@pytest.mark.parametrize("streamed", [False, True])
def test_a_run_continued_from_its_state_is_observed_under_its_own_id(
    observer: Observer, streamed: bool
) -> None:
    """The SDK's pattern (approve on the state, pass it back in) continues the stopped run under
    its id: observers see that id for the continuation too, and `last_run_id()` gives it."""
    from agents import function_tool

    @function_tool(needs_approval=True)
    def pay(amount: int) -> str:
        """Pay."""
        return f"paid {amount}"

    model = ScriptedModel(
        [[function_call("pay", {"amount": 5}, call_id="p1")], [assistant_message("done")]]
    )
    agent = Agent(name="payer", model=model, tools=[pay])
    runner = runplane.runner(NAME)

    async def go() -> tuple[str | None, Any]:
        stopped = await runner.run(agent, "pay")
        first = last_run_id()
        state = stopped.to_state()
        state.approve(stopped.interruptions[0])
        if streamed:
            result = runner.run_streamed(agent, state)
            async for _ in result.stream_events():
                pass
        else:
            result = await runner.run(agent, state)
        assert result.final_output == "done"
        assert last_run_id() == first
        return first, result

    first, _ = asyncio.run(go())
    assert [r.run_id for r in observer.started] == [first, first]
    assert [r.run_id for r in observer.finished] == [first, first]
