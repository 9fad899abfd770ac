"""INSTR: callable instructions are called as the SDK calls them, and their errors are not hidden.

Dynamic instructions are how programs put per-user state into the system prompt; called without
arguments they cannot read the context, and a swallowed exception silently sends the model no
instructions at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest
from agents import Agent, RunContextWrapper

from runplane import BackendRunner

from ._support import MODES, Ctx, Mode, execute, reply, requirement, scripted
from .plugin import ConformanceSettings

Flavour = Literal["sync", "async"]
FLAVOURS: tuple[Flavour, ...] = ("sync", "async")
PROMPT = "Answer in one word."


class InstructionsFailure(Exception):
    """Raised by the instructions in INSTR-3; the caller must get this very object back."""


def instructions(
    flavour: Flavour, calls: list[tuple[Any, ...]], error: Exception | None = None
) -> Callable[[RunContextWrapper[Ctx], Agent[Ctx]], Any]:
    """Instructions that record their arguments and return PROMPT, or raise `error`."""

    def sync(wrapper: RunContextWrapper[Ctx], agent: Agent[Ctx]) -> str:
        calls.append((wrapper, agent))
        if error is not None:
            raise error
        return PROMPT

    async def async_(wrapper: RunContextWrapper[Ctx], agent: Agent[Ctx]) -> str:
        return sync(wrapper, agent)

    return sync if flavour == "sync" else async_


def run(
    backend: type[BackendRunner], mode: Mode, flavour: Flavour, timeout: float
) -> tuple[Ctx, Agent[Ctx], list[tuple[Any, ...]], str | None]:
    calls: list[tuple[Any, ...]] = []
    model = scripted(reply("Paris"))
    agent: Agent[Ctx] = Agent(
        name="geographer", instructions=instructions(flavour, calls), model=model
    )
    ctx = Ctx()
    execute(backend, mode, agent, "Capital of France?", context=ctx, timeout=timeout)
    assert calls, "the instructions were never called"
    sent = model.first_call.system_instructions if model.first_call is not None else None
    return ctx, agent, calls, sent


@requirement("INSTR-1")
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("mode", MODES)
def test_instructions_get_wrapper_and_agent(
    runplane_backend: type[BackendRunner],
    runplane_settings: ConformanceSettings,
    mode: Mode,
    flavour: Flavour,
) -> None:
    _, agent, calls, sent = run(runplane_backend, mode, flavour, runplane_settings.timeout)
    for wrapper, got_agent in calls:
        assert isinstance(wrapper, RunContextWrapper), f"first argument: {wrapper!r}"
        assert isinstance(got_agent, Agent), f"second argument: {got_agent!r}"
        assert got_agent.name == agent.name
    assert sent == PROMPT, f"the model was sent {sent!r} as instructions, not their result"


@requirement("INSTR-2")
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("mode", MODES)
def test_instructions_see_the_callers_context(
    runplane_backend: type[BackendRunner],
    runplane_settings: ConformanceSettings,
    mode: Mode,
    flavour: Flavour,
) -> None:
    ctx, _, calls, _ = run(runplane_backend, mode, flavour, runplane_settings.timeout)
    for wrapper, _ in calls:
        got = getattr(wrapper, "context", None)
        assert got is ctx, f"the wrapper's context is {got!r}, not the caller's {ctx!r}"


@requirement("INSTR-3")
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("mode", MODES)
def test_instructions_errors_reach_the_caller(
    runplane_backend: type[BackendRunner],
    runplane_settings: ConformanceSettings,
    mode: Mode,
    flavour: Flavour,
) -> None:
    error = InstructionsFailure("no prompt for you")
    agent: Agent[Ctx] = Agent(
        name="geographer",
        instructions=instructions(flavour, [], error),
        model=scripted(reply("Paris")),
    )
    with pytest.raises(Exception) as caught:  # noqa: PT011 - any type; identity is checked below
        execute(runplane_backend, mode, agent, "?", timeout=runplane_settings.timeout)
    assert caught.value is error, (
        f"the caller got {type(caught.value).__qualname__}({caught.value}), "
        "not the exception the instructions raised"
    )
