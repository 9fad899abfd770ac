"""ERR, ERRH: a failed run raises what the SDK's runner raises, and error handlers are honoured.

Programs catch `MaxTurnsExceeded`, the guardrail tripwires, `ModelBehaviorError` and `UserError`
by type; a backend that returns a result instead, or raises its own exception type, sends those
failures down the success path or past the handlers. The expected message is taken from the SDK's
runner on the same script, so the tests do not pin the SDK's wording.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    RunContextWrapper,
    function_tool,
    input_guardrail,
    output_guardrail,
)
from agents.exceptions import (
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputGuardrailTripwireTriggered,
    UserError,
)
from agents.items import TResponseInputItem
from agents.run_error_handlers import RunErrorHandlerInput, RunErrorHandlerResult

from runplane import BackendRunner

from ._support import (
    MODES,
    AnyRunner,
    Ctx,
    Mode,
    describe,
    execute,
    reference,
    reply,
    requirement,
    scripted,
    tool_calls,
)
from .plugin import ConformanceSettings

Scenario = Callable[[], tuple[Agent[Ctx], dict[str, Any]]]


class ModelFailure(Exception):
    """What the scripted model raises in ERR-6 (a provider error, as far as the runner knows)."""


class ToolFailure(Exception):
    """What the tool raises in ERR-5."""


@function_tool
async def lookup(topic: str) -> str:
    return f"facts about {topic}"


@function_tool(failure_error_function=None)
async def explode(reason: str) -> str:
    raise ToolFailure(reason)


def too_many_turns() -> tuple[Agent[Ctx], dict[str, Any]]:
    model = scripted(tool_calls(("lookup", {"topic": "x"}, "call-1")), reply("late"))
    return Agent(name="assistant", model=model, tools=[lookup]), {"max_turns": 1}


def input_tripwire() -> tuple[Agent[Ctx], dict[str, Any]]:
    @input_guardrail
    def block_input(
        wrapper: RunContextWrapper[Ctx], agent: Agent[Ctx], data: str | list[TResponseInputItem]
    ) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info="blocked", tripwire_triggered=True)

    model = scripted(reply("never shown"))
    return Agent(name="assistant", model=model, input_guardrails=[block_input]), {}


def output_tripwire() -> tuple[Agent[Ctx], dict[str, Any]]:
    @output_guardrail
    def block_output(
        wrapper: RunContextWrapper[Ctx], agent: Agent[Ctx], output: Any
    ) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info="blocked", tripwire_triggered=True)

    model = scripted(reply("leaks a secret"))
    return Agent(name="assistant", model=model, output_guardrails=[block_output]), {}


def unknown_tool() -> tuple[Agent[Ctx], dict[str, Any]]:
    model = scripted(tool_calls(("no_such_tool", {}, "call-1")), reply("unreached"))
    return Agent(name="assistant", model=model, tools=[lookup]), {}


def tool_failure() -> tuple[Agent[Ctx], dict[str, Any]]:
    model = scripted(tool_calls(("explode", {"reason": "kaboom"}, "call-1")), reply("unreached"))
    return Agent(name="assistant", model=model, tools=[explode]), {}


def raise_and_compare(
    backend: type[BackendRunner],
    mode: Mode,
    scenario: Scenario,
    expected_type: type[Exception],
    timeout: float,
) -> Exception:
    """Both runners must raise `expected_type` with the same message; returns the backend's."""

    def outcome(runner: AnyRunner) -> Exception | None:
        agent, kwargs = scenario()
        try:
            execute(runner, mode, agent, "go", context=Ctx(), timeout=timeout, **kwargs)
        except Exception as exc:
            return exc
        return None

    expected = outcome(reference())
    assert type(expected) is expected_type, f"the SDK's runner itself gave {describe(expected)}"
    got = outcome(backend)
    assert got is not None, f"the run returned; the SDK's runner raises {describe(expected)}"
    assert type(got) is expected_type, (
        f"the backend raised {describe(got)}; the SDK's runner raises {describe(expected)}"
    )
    assert str(got) == str(expected)
    return got


@requirement("ERR-1")
@pytest.mark.parametrize("mode", MODES)
def test_max_turns_exceeded(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    raise_and_compare(
        runplane_backend, mode, too_many_turns, MaxTurnsExceeded, runplane_settings.timeout
    )


@requirement("ERR-2")
@pytest.mark.parametrize("mode", MODES)
def test_input_guardrail_tripwire(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    got = raise_and_compare(
        runplane_backend,
        mode,
        input_tripwire,
        InputGuardrailTripwireTriggered,
        runplane_settings.timeout,
    )
    assert isinstance(got, InputGuardrailTripwireTriggered)
    assert got.guardrail_result.output.output_info == "blocked"


@requirement("ERR-3")
@pytest.mark.parametrize("mode", MODES)
def test_output_guardrail_tripwire(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    got = raise_and_compare(
        runplane_backend,
        mode,
        output_tripwire,
        OutputGuardrailTripwireTriggered,
        runplane_settings.timeout,
    )
    assert isinstance(got, OutputGuardrailTripwireTriggered)
    assert got.guardrail_result.agent_output == "leaks a secret"


@requirement("ERR-4")
@pytest.mark.parametrize("mode", MODES)
def test_unknown_tool_is_model_behavior_error(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    raise_and_compare(
        runplane_backend, mode, unknown_tool, ModelBehaviorError, runplane_settings.timeout
    )


@requirement("ERR-5")
@pytest.mark.parametrize("mode", MODES)
def test_tool_failure_is_user_error(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    got = raise_and_compare(
        runplane_backend, mode, tool_failure, UserError, runplane_settings.timeout
    )
    assert isinstance(got.__cause__, ToolFailure), f"__cause__ is {describe(got.__cause__)}"


@requirement("ERR-6")
@pytest.mark.parametrize("mode", MODES)
def test_model_errors_reach_the_caller_unchanged(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    error = ModelFailure("provider unavailable")
    agent: Agent[Ctx] = Agent(name="assistant", model=scripted(error))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - any type; identity is checked below
        execute(runplane_backend, mode, agent, "hi", timeout=runplane_settings.timeout)
    assert caught.value is error, (
        f"the caller got {describe(caught.value)}, not the exception the model raised"
    )


def handled_run(
    runner: AnyRunner, mode: Mode, timeout: float
) -> tuple[Ctx, list[RunErrorHandlerInput[Ctx]], Any]:
    seen: list[RunErrorHandlerInput[Ctx]] = []

    def on_max_turns(data: RunErrorHandlerInput[Ctx]) -> RunErrorHandlerResult:
        seen.append(data)
        return RunErrorHandlerResult(final_output="Sorry, I ran out of turns.")

    agent, kwargs = too_many_turns()
    ctx = Ctx()
    execution = execute(
        runner,
        mode,
        agent,
        "go",
        context=ctx,
        timeout=timeout,
        error_handlers={"max_turns": on_max_turns},
        **kwargs,
    )
    return ctx, seen, execution.result


@requirement("ERRH-1")
@pytest.mark.parametrize("mode", MODES)
def test_max_turns_handler_gives_the_final_output(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings, mode: Mode
) -> None:
    _, _, expected = handled_run(reference(), mode, runplane_settings.timeout)
    ctx, seen, got = handled_run(runplane_backend, mode, runplane_settings.timeout)
    assert len(seen) == 1, f"the max_turns handler was called {len(seen)} times"
    assert isinstance(seen[0].error, MaxTurnsExceeded)
    assert got.final_output == "Sorry, I ran out of turns."
    assert got.to_input_list() == expected.to_input_list()
    assert seen[0].context.context is ctx, "the handler did not get the caller's context"
