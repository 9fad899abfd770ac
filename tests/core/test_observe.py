"""Observation hooks see every run on every backend, without the backend's help."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, MaxTurnsExceeded, function_tool
from agents.result import RunResultBase
from agents.stream_events import StreamEvent
from agents.testing import ScriptedModel, assistant_message, function_call
from support.backends import BackendPlugin, RecordingBackend

import runplane
from runplane import RunInfo


class Observer:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    @runplane.hookimpl
    def runplane_run_started(self, run: RunInfo) -> None:
        self.log.append(("started", run))

    @runplane.hookimpl
    def runplane_stream_event(self, run: RunInfo, event: StreamEvent) -> None:
        self.log.append(("event", event))

    @runplane.hookimpl
    def runplane_run_finished(
        self, run: RunInfo, result: RunResultBase | None, error: BaseException | None
    ) -> None:
        self.log.append(("finished", (run, result, error)))


@pytest.fixture
def observer() -> Iterator[Observer]:
    obs = Observer()
    names = [
        runplane.register_plugin(obs, name="test-observer"),
        runplane.register_plugin(BackendPlugin({"rec": RecordingBackend}), name="test-obs-rec"),
    ]
    yield obs
    for name in names:
        runplane.default_registry().unregister(name)


@function_tool
def shout(text: str) -> str:
    return text.upper()


def _agent() -> Agent[Any]:
    return Agent(
        name="loud",
        tools=[shout],
        model=ScriptedModel(
            [[function_call("shout", {"text": "hi"}, call_id="c1")], [assistant_message("HI")]]
        ),
    )


@pytest.mark.parametrize("backend", ["openai", "rec"])
def test_run_sync_is_observed_start_and_finish(observer: Observer, backend: str) -> None:
    result = runplane.runner(backend).run_sync(_agent(), "x")
    kinds = [k for k, _ in observer.log]
    assert kinds == ["started", "finished"]
    started: RunInfo = observer.log[0][1]
    assert (started.backend, started.agent_name, started.mode) == (backend, "loud", "run_sync")
    run, finished_result, error = observer.log[1][1]
    assert run is started
    assert finished_result is result
    assert error is None


def test_failed_run_is_observed_with_its_error(observer: Observer) -> None:
    agent = Agent(
        name="loop",
        tools=[shout],
        model=ScriptedModel(
            [[function_call("shout", {"text": "a"}, call_id=f"c{i}")] for i in range(3)]
        ),
    )
    with pytest.raises(MaxTurnsExceeded) as info:
        asyncio.run(runplane.runner("openai").run(agent, "x", max_turns=2))
    _, result, error = observer.log[-1][1]
    assert result is None
    assert error is info.value


def test_streamed_run_reports_each_event_the_consumer_sees(observer: Observer) -> None:
    seen: list[StreamEvent] = []

    async def consume() -> Any:
        result = runplane.runner("rec").run_streamed(_agent(), "x")
        async for event in result.stream_events():
            seen.append(event)
        return result

    result = asyncio.run(consume())
    kinds = [k for k, _ in observer.log]
    assert kinds[0] == "started"
    assert kinds[-1] == "finished"
    assert [e for k, e in observer.log if k == "event"] == seen
    assert len(seen) > 5
    assert observer.log[-1][1][1] is result
    assert observer.log[0][1].streamed


def test_no_observers_means_no_wrapping() -> None:
    async def consume() -> Any:
        result = runplane.runner("openai").run_streamed(_agent(), "x")
        assert "stream_events" not in vars(result)  # the SDK's own method, untouched
        async for _ in result.stream_events():
            pass
        return result.final_output

    assert asyncio.run(consume()) == "HI"


class AsyncStreamingBackend(RecordingBackend):
    """The rejected AgentspanRunner's shape: `async def run_streamed`."""

    async def run_streamed(self, starting_agent: Any, input: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise AssertionError("never awaited")


def test_a_coroutine_from_run_streamed_is_refused_by_name(observer: Observer) -> None:
    name = runplane.register_plugin(
        BackendPlugin({"async-stream": AsyncStreamingBackend}), name="test-async-stream"
    )
    try:
        with pytest.raises(TypeError, match="backend 'async-stream' returned coroutine") as info:
            runplane.runner("async-stream").run_streamed(_agent(), "x")
    finally:
        runplane.default_registry().unregister(name)
    assert "must be synchronous" in str(info.value)
    assert observer.log[-1][0] == "finished"
    assert observer.log[-1][1][2] is info.value


class ReservingBackend(RecordingBackend):
    """Names its runs; `takes_input` says which form of `reserve_run_id` it has."""

    def __init__(self) -> None:
        super().__init__()
        self.given: list[Any] = []

    def reserve_run_id(self, input: Any = None) -> Any:
        self.given.append(input)
        return contextlib.nullcontext(f"run-{len(self.given)}")


class OldReservingBackend(RecordingBackend):
    """A backend written before `reserve_run_id` took the run's input."""

    def reserve_run_id(self) -> Any:
        return contextlib.nullcontext("old-run")


def test_reserve_run_id_gets_the_input_when_it_takes_one(observer: Observer) -> None:
    """A backend may name a run after its input (a RunState continuing a run it named
    before); one whose `reserve_run_id()` takes no input is called without it."""
    new, old = ReservingBackend(), OldReservingBackend()
    names = [
        runplane.register_plugin(BackendPlugin({"reserving": lambda: new}), name="reserving"),
        runplane.register_plugin(BackendPlugin({"old-reserving": lambda: old}), name="old-res"),
    ]
    try:
        runplane.runner("reserving").run_sync(_agent(), "go")
        runplane.runner("old-reserving").run_sync(_agent(), "go")
    finally:
        for name in names:
            runplane.default_registry().unregister(name)
    assert new.given == ["go"]
    started = [run.run_id for kind, run in observer.log if kind == "started"]
    assert started == ["run-1", "old-run"]


class BareResultBackend(RecordingBackend):
    """A stand-in whose run_streamed returns a bare object (as the SDK's own tests do with a
    default runner of their own)."""

    def run_streamed(self, starting_agent: Any, input: Any, **kwargs: Any) -> Any:
        return object.__new__(object)


def test_a_stand_in_streamed_result_that_takes_no_attribute_is_handed_back(
    observer: Observer,
) -> None:
    bare = BareResultBackend()
    name = runplane.register_plugin(BackendPlugin({"bare": lambda: bare}), name="bare-res")
    try:
        result = runplane.runner("bare").run_streamed(_agent(), "go")
    finally:
        runplane.default_registry().unregister(name)
    assert type(result) is object
