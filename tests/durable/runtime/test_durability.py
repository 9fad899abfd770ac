"""`DurableBackend.durability()`: its runs named, their history read from the event log, and the
errors that refuse a changed program, as the conformance suite's durability profile uses them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import (
    DurableBackend,
    ReplayDivergenceError,
    RunInputMismatchError,
    RunNotFoundError,
)

from runplane import DurableCapabilities, RunHistory, RunStep, durability_of


def _agent(slow_seconds: float, started: asyncio.Event | None = None) -> Agent[Any]:
    """Model call 1 asks for both tools; a resume, which replays it, gets only the reply."""

    @function_tool
    async def quick(key: str) -> str:
        return f"quick {key}"

    @function_tool
    async def slow(key: str) -> str:
        if started is not None:
            started.set()
        await asyncio.sleep(slow_seconds)
        return f"slow {key}"

    calls = [
        function_call("quick", {"key": "a"}, call_id="c1"),
        function_call("slow", {"key": "b"}, call_id="c2"),
    ]
    reply = [assistant_message("done")]
    model = ScriptedModel([calls, reply] if started is not None else [reply])
    return Agent(name="main", tools=[quick, slow], model=model)


def test_the_backend_offers_the_capabilities(backend: DurableBackend) -> None:
    caps = durability_of(backend)
    assert isinstance(caps, DurableCapabilities)
    assert set(caps.divergence_errors) == {ReplayDivergenceError, RunInputMismatchError}


def test_history_shows_the_tool_in_flight_unfinished_then_the_resumed_run(
    backend: DurableBackend,
) -> None:
    caps = backend.durability()

    async def interrupted() -> RunHistory:
        started = asyncio.Event()
        with caps.run_id("history-1"):
            task = asyncio.ensure_future(backend.run(_agent(30, started), "go"))
        await started.wait()
        await asyncio.sleep(0.2)  # the quick tool's output commits meanwhile
        task.cancel()  # stopped with the slow tool in flight: the run stays resumable
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await caps.history("history-1")

    assert asyncio.run(interrupted()) == RunHistory(
        "history-1",
        (
            RunStep("model_call", 1, "main"),
            RunStep("tool_call", 1, "quick", "c1", finished=True),
            RunStep("tool_call", 1, "slow", "c2", finished=False),
        ),
        finished=False,
    )

    async def resumed() -> RunHistory:
        with caps.run_id("history-1"):
            result = await backend.run(_agent(0.0), "go")
        assert result.final_output == "done"
        return await caps.history("history-1")

    history = asyncio.run(resumed())
    assert history.finished
    assert [(s.kind, s.turn, s.call_id, s.finished) for s in history.steps] == [
        ("model_call", 1, None, True),
        ("tool_call", 1, "c1", True),
        ("tool_call", 1, "c2", True),
        ("model_call", 2, None, True),
    ]


def test_history_of_an_unknown_run_is_an_error(backend: DurableBackend) -> None:
    with pytest.raises(RunNotFoundError):
        asyncio.run(backend.durability().history("no-such-run"))
