"""What every test module needs: running an agent in each mode, with a timeout, on any runner.

Tests are plain synchronous functions that start their own event loops, exactly as user programs
do, so the suite needs no async pytest plugin and `run_sync` is called where it is meant to be.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, TypeVar

import pytest
from agents import Agent, RunResult, RunResultStreaming
from agents.items import TResponseInputItem
from agents.result import RunResultBase
from agents.run import AgentRunner
from agents.stream_events import (
    AgentUpdatedStreamEvent,
    RawResponsesStreamEvent,
    RunItemStreamEvent,
    StreamEvent,
)
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage

from runplane import BackendRunner

from .requirements import MARKER, REQUIREMENTS

__all__ = [
    "MODES",
    "AnyRunner",
    "Ctx",
    "Execution",
    "Mode",
    "event_signature",
    "execute",
    "not_streaming",
    "reference",
    "reply",
    "requirement",
    "run_in_loop",
    "tool_calls",
]

Mode = Literal["run", "run_sync", "run_streamed"]
MODES: tuple[Mode, ...] = ("run", "run_sync", "run_streamed")

AnyRunner = type[BackendRunner] | AgentRunner
"""A backend's runner class, or the SDK's own `AgentRunner` used as the reference."""


def requirement(*ids: str) -> pytest.MarkDecorator:
    """`@requirement("TOOLCTX-1")`: the requirement a test checks (see docs/conformance.md)."""
    unknown = [i for i in ids if i not in REQUIREMENTS]
    if not ids or unknown:
        raise ValueError(f"unknown requirement ids {unknown}; add them to requirements.py")
    mark: pytest.MarkDecorator = getattr(pytest.mark, MARKER)
    return mark(*ids)


T = TypeVar("T")


class Ctx:
    """A caller's context object; compared by identity, which is what the requirements are about."""

    def __init__(self, label: str = "caller") -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"Ctx({self.label!r}, id=0x{id(self):x})"


def reference() -> AgentRunner:
    """A fresh SDK runner, never `agents.Runner`, which runplane.install may have redirected."""
    return AgentRunner()


@dataclasses.dataclass
class Execution:
    """A finished run: its result and, for run_streamed, the events in the order consumed."""

    result: RunResult | RunResultStreaming
    events: list[StreamEvent]


def run_in_loop(awaitable: Awaitable[T], timeout: float, what: str) -> T:
    """`asyncio.run` with a deadline, so a backend that hangs fails the test instead."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"{what} did not finish within {timeout:g}s (--runplane-timeout)")

    return asyncio.run(bounded())


async def consume(
    result: RunResultStreaming, events: list[StreamEvent] | None = None
) -> list[StreamEvent]:
    """Drain `stream_events()`, keeping what arrived even if the stream then raises."""
    seen = [] if events is None else events
    async for event in result.stream_events():
        seen.append(event)
    return seen


def execute(
    runner: AnyRunner,
    mode: Mode,
    agent: Agent[Any],
    input: str | list[TResponseInputItem],
    *,
    timeout: float,
    events: list[StreamEvent] | None = None,
    **kwargs: Any,
) -> Execution:
    """Run `agent` in `mode` from synchronous code, as a user program would.

    For run_streamed, `run_streamed` is called inside a running loop (where the SDK requires it)
    and the events are consumed there; `events` receives them as they arrive.
    """
    if mode == "run":
        result: RunResult | RunResultStreaming = run_in_loop(
            runner.run(agent, input, **kwargs), timeout, "run()"
        )
        return Execution(result, [])
    if mode == "run_sync":
        return Execution(runner.run_sync(agent, input, **kwargs), [])
    seen: list[StreamEvent] = [] if events is None else events

    async def streamed() -> RunResultStreaming:
        streaming: Any = runner.run_streamed(agent, input, **kwargs)
        if not isinstance(streaming, RunResultStreaming):
            pytest.fail(not_streaming(streaming))
        await consume(streaming, seen)
        return streaming

    return Execution(run_in_loop(streamed(), timeout, "run_streamed() and its events"), seen)


def not_streaming(result: object) -> str:
    """The failure message for a run_streamed that returned something else (a coroutine: closed)."""
    if inspect.iscoroutine(result):
        result.close()  # never awaited: close it, or Python warns about it at some later point
    return f"run_streamed returned {result!r}, not an agents.RunResultStreaming"


def check_result_type(result: RunResultBase, mode: Mode) -> None:
    expected = RunResultStreaming if mode == "run_streamed" else RunResult
    assert isinstance(result, expected), (
        f"{mode} returned {type(result).__module__}.{type(result).__qualname__}, "
        f"not the SDK's {expected.__qualname__}"
    )


def event_signature(event: object) -> tuple[str, ...]:
    """What a consumer can branch on: the event class, its name or raw type, the agent."""
    if isinstance(event, RawResponsesStreamEvent):
        return ("raw_response_event", str(getattr(event.data, "type", "?")))
    if isinstance(event, RunItemStreamEvent):
        item = event.item
        return ("run_item_stream_event", event.name, type(item).__name__, item.agent.name)
    if isinstance(event, AgentUpdatedStreamEvent):
        return ("agent_updated_stream_event", event.new_agent.name)
    return ("not an SDK stream event", f"{type(event).__module__}.{type(event).__qualname__}")


def usage(input_tokens: int = 3, output_tokens: int = 2) -> Usage:
    return Usage(
        requests=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def reply(text: str, *, item_id: str = "msg-final") -> ModelStep:
    """A model turn that answers with text (a final output when it has no tool calls)."""
    return ModelStep(output=[assistant_message(text, item_id=item_id)], usage=usage())


def tool_calls(*calls: tuple[str, str | dict[str, Any], str]) -> ModelStep:
    """A model turn with one or more (name, arguments, call_id) function calls."""
    return ModelStep(
        output=[function_call(name, args, call_id=call_id) for name, args, call_id in calls],
        usage=usage(),
    )


def scripted(*steps: ModelStep | Exception) -> ScriptedModel:
    return ScriptedModel(list(steps))


def raised(fn: Any, *args: Any, **kwargs: Any) -> BaseException | None:
    """The exception `fn(*args, **kwargs)` raised, or None (for outcome comparisons)."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        return exc
    return None


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no exception"
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


def names(items: Sequence[object]) -> list[str]:
    return [type(item).__name__ for item in items]
