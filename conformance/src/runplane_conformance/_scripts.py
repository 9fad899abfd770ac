"""Model scripts for the parity tests: plain data that hypothesis generates and shrinks.

A `Script` is turned into agents, tools and a fresh `ScriptedModel` by `build`, once for the SDK's
runner and once for the backend, so both runs see identical inputs and share no state. Everything a
program can observe about the run is then reduced to comparable data by `observe`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Literal

from agents import Agent, RunContextWrapper, Tool, function_tool
from agents.items import TResponseInputItem
from agents.run_error_handlers import (
    RunErrorHandlerInput,
    RunErrorHandlerResult,
    RunErrorHandlers,
)
from agents.stream_events import StreamEvent
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.testing.model import ModelCall
from agents.tool import FunctionTool
from agents.usage import Usage
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from ._support import Ctx, Execution, event_signature

__all__ = [
    "Built",
    "Call",
    "Calls",
    "Fail",
    "Handoff",
    "Observed",
    "Reply",
    "Script",
    "build",
    "observe",
    "scripts",
]

AgentName = Literal["main", "helper"]
OutputKind = Literal["text", "pydantic", "dataclass"]


class Verdict(BaseModel):
    """Structured output as a pydantic model."""

    answer: str
    score: int


@dataclasses.dataclass
class Note:
    """Structured output as a dataclass."""

    answer: str
    score: int


OUTPUT_TYPES: dict[OutputKind, type[Any] | None] = {
    "text": None,
    "pydantic": Verdict,
    "dataclass": Note,
}


class ScriptedModelFailure(Exception):
    """What a scripted model step raises (a provider error, as far as the runner can tell)."""


class ToolFailure(Exception):
    """What the `fail` tool raises; the SDK turns it into a message for the model."""


# Async tools only: the SDK runs sync tools in worker threads, whose completion order would make
# parallel calls nondeterministic even on the SDK's own runner.
@function_tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@function_tool
async def echo(text: str) -> str:
    """Repeat the text."""
    return f"echo: {text}"


@function_tool
async def fail(reason: str) -> str:
    """Always fails."""
    raise ToolFailure(reason)


TOOLS: dict[AgentName, list[FunctionTool]] = {"main": [add, echo, fail], "helper": [echo]}


@dataclasses.dataclass(frozen=True)
class Call:
    """One function call in a model response; `arguments` is sent verbatim (may be invalid)."""

    tool: str
    arguments: str


@dataclasses.dataclass(frozen=True)
class Calls:
    """A model response with function calls (several = parallel calls), optionally with text."""

    calls: tuple[Call, ...]
    text: str | None = None
    input_tokens: int = 1
    output_tokens: int = 1


@dataclasses.dataclass(frozen=True)
class Handoff:
    """A model response that hands off to the other agent."""

    to: AgentName
    input_tokens: int = 1
    output_tokens: int = 1


@dataclasses.dataclass(frozen=True)
class Reply:
    """A model response with only text: the final output (parsed when the output is structured)."""

    text: str
    input_tokens: int = 1
    output_tokens: int = 1


@dataclasses.dataclass(frozen=True)
class Fail:
    """A model call that raises ScriptedModelFailure(message)."""

    message: str


Step = Calls | Handoff | Reply | Fail


@dataclasses.dataclass(frozen=True)
class Script:
    """A whole run: the input, the model's steps in order, and the run's settings."""

    steps: tuple[Step, ...]
    input: str | tuple[str, ...] = "hello"
    output: OutputKind = "text"
    max_turns: int = 10
    max_turns_handler: bool = False


@dataclasses.dataclass
class Built:
    """One independent instance of a script: agents, model and the caller's context."""

    agent: Agent[Ctx]
    model: ScriptedModel
    context: Ctx
    input: str | list[TResponseInputItem]
    kwargs: dict[str, Any]


def _usage(input_tokens: int, output_tokens: int) -> Usage:
    return Usage(
        requests=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def _model_step(index: int, step: Step) -> ModelStep:
    if isinstance(step, Fail):
        return ModelStep.raise_error(ScriptedModelFailure(step.message))
    if isinstance(step, Reply):
        return ModelStep(
            output=[assistant_message(step.text, item_id=f"msg-{index}")],
            usage=_usage(step.input_tokens, step.output_tokens),
        )
    if isinstance(step, Handoff):
        return ModelStep(
            output=[function_call(f"transfer_to_{step.to}", "{}", call_id=f"call-{index}-0")],
            usage=_usage(step.input_tokens, step.output_tokens),
        )
    output = [assistant_message(step.text, item_id=f"msg-{index}")] if step.text else []
    output += [
        function_call(call.tool, call.arguments, call_id=f"call-{index}-{n}")
        for n, call in enumerate(step.calls)
    ]
    return ModelStep(output=output, usage=_usage(step.input_tokens, step.output_tokens))


def _handler_output(kind: OutputKind) -> Any:
    if kind == "pydantic":
        return Verdict(answer="out of turns", score=-1)
    if kind == "dataclass":
        return Note(answer="out of turns", score=-1)
    return "out of turns"


def _fresh(tools: list[FunctionTool]) -> list[Tool]:
    """Copies, so that a backend that patches a tool object cannot reach the reference run."""
    return [dataclasses.replace(tool) for tool in tools]


def build(script: Script) -> Built:
    """Fresh agents, a fresh model and a fresh context: nothing is shared between two runs."""
    model = ScriptedModel([_model_step(i, step) for i, step in enumerate(script.steps)])
    output_type = OUTPUT_TYPES[script.output]

    def instructions(wrapper: RunContextWrapper[Ctx], agent: Agent[Ctx]) -> str:
        return f"You are {agent.name}, working for {wrapper.context.label}."

    main: Agent[Ctx] = Agent(
        name="main",
        instructions=instructions,
        model=model,
        tools=_fresh(TOOLS["main"]),
        output_type=output_type,
    )
    helper: Agent[Ctx] = Agent(
        name="helper",
        instructions="You help.",
        model=model,
        tools=_fresh(TOOLS["helper"]),
        output_type=output_type,
    )
    main.handoffs = [helper]
    helper.handoffs = [main]
    kwargs: dict[str, Any] = {"max_turns": script.max_turns}
    if script.max_turns_handler:
        value = _handler_output(script.output)

        def on_max_turns(_: RunErrorHandlerInput[Ctx]) -> RunErrorHandlerResult:
            return RunErrorHandlerResult(final_output=value)

        handlers: RunErrorHandlers[Ctx] = {"max_turns": on_max_turns}
        kwargs["error_handlers"] = handlers
    run_input: str | list[TResponseInputItem]
    if isinstance(script.input, str):
        run_input = script.input
    else:
        run_input = [{"role": "user", "content": text} for text in script.input]
    return Built(main, model, Ctx("parity"), run_input, kwargs)


@dataclasses.dataclass
class Observed:
    """Everything the parity tests compare; equal `Observed`s mean indistinguishable runs."""

    outcome: tuple[Any, ...]
    model_calls: list[dict[str, Any]]
    last_agent: str | None = None
    new_items: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    input_list: list[Any] = dataclasses.field(default_factory=list)
    usage: tuple[Any, ...] = ()
    events: list[tuple[str, ...]] = dataclasses.field(default_factory=list)


def _model_call(call: ModelCall) -> dict[str, Any]:
    return {
        "system_instructions": call.system_instructions,
        "input": call.input,
        "tools": [tool.name for tool in call.tools],
        "handoffs": [handoff.tool_name for handoff in call.handoffs],
        "output_schema": call.output_schema.name() if call.output_schema is not None else None,
        "previous_response_id": call.previous_response_id,
        "conversation_id": call.conversation_id,
    }


def observe(
    built: Built,
    execution: Execution | None,
    error: BaseException | None,
    events: list[StreamEvent],
) -> Observed:
    calls = [_model_call(call) for call in built.model.calls]
    signatures = [event_signature(event) for event in events]
    if error is not None or execution is None:
        outcome = ("raised", type(error).__module__, type(error).__qualname__, str(error))
        return Observed(outcome, calls, events=signatures)
    result = execution.result
    total = result.context_wrapper.usage
    return Observed(
        outcome=("returned", result.final_output),
        model_calls=calls,
        last_agent=result.last_agent.name,
        new_items=[(type(item).__name__, item.agent.name) for item in result.new_items],
        input_list=result.to_input_list(),
        usage=(
            total.requests,
            total.input_tokens,
            total.output_tokens,
            total.total_tokens,
            [
                (entry.input_tokens, entry.output_tokens, entry.total_tokens)
                for entry in total.request_usage_entries
            ],
        ),
        events=signatures,
    )


# --- strategies -------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=12)  # utf-8: no lone surrogates
_tokens = st.integers(min_value=0, max_value=50)


def _rarely(one_in: int) -> st.SearchStrategy[bool]:
    """True about once in `one_in` draws (hypothesis favours range ends, so not at an end)."""
    return st.integers(0, one_in - 1).map(lambda n: n == one_in // 2)


def _arguments(tool: str) -> st.SearchStrategy[str]:
    valid: st.SearchStrategy[dict[str, Any]]
    if tool == "add":
        valid = st.fixed_dictionaries(
            {"a": st.integers(-1000, 1000), "b": st.integers(-1000, 1000)}
        )
    elif tool == "echo":
        valid = st.fixed_dictionaries({"text": _text})
    elif tool == "fail":
        valid = st.fixed_dictionaries({"reason": _text})
    else:
        valid = st.just({})
    as_json = valid.map(lambda args: json.dumps(args, separators=(",", ":")))
    # Mostly well-formed; sometimes malformed or mistyped, which the SDK reports back or raises.
    malformed = st.sampled_from(["{", '{"a":"x"}', "[]"])
    return _rarely(8).flatmap(lambda bad: malformed if bad else as_json)


@st.composite
def _call(draw: st.DrawFn, agent: AgentName) -> Call:
    names = [tool.name for tool in TOOLS[agent]]
    tool = "no_such_tool" if draw(_rarely(20)) else draw(st.sampled_from(names))
    return Call(tool, draw(_arguments(tool)))


def structured(kind: OutputKind, answer: str, score: int) -> str:
    """The JSON a model sends for `kind`; the SDK wraps non-pydantic types in {"response": ...}."""
    value = {"answer": answer, "score": score}
    return json.dumps(value if kind == "pydantic" else {"response": value})


def _reply_text(kind: OutputKind) -> st.SearchStrategy[str]:
    if kind == "text":
        return _text
    scores = st.integers(-5, 5)
    valid = st.builds(lambda answer, score: structured(kind, answer, score), _text, scores)
    return _rarely(8).flatmap(lambda garbage: _text if garbage else valid)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """Text replies, (parallel) tool calls, handoffs, structured output, model errors, max_turns."""
    output: OutputKind = draw(st.sampled_from(["text", "text", "pydantic", "dataclass"]))
    current: AgentName = "main"
    steps: list[Step] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 3)) == 0:
            current = "helper" if current == "main" else "main"
            steps.append(Handoff(current, draw(_tokens), draw(_tokens)))
            continue
        calls = tuple(draw(st.lists(_call(current), min_size=1, max_size=3)))
        text = draw(st.one_of(st.none(), st.none(), _text))
        steps.append(Calls(calls, text, draw(_tokens), draw(_tokens)))
    ending = draw(st.sampled_from(["reply"] * 6 + ["fail", "none"]))
    if ending == "reply":
        steps.append(Reply(draw(_reply_text(output)), draw(_tokens), draw(_tokens)))
    elif ending == "fail":
        steps.append(Fail(draw(_text)))
    run_input = draw(st.one_of(_text, st.lists(_text, min_size=1, max_size=2).map(tuple)))
    max_turns = draw(st.one_of(st.just(10), st.integers(1, len(steps) + 1)))
    return Script(tuple(steps), run_input, output, max_turns, draw(st.booleans()))


# Fixed examples, always run first: each feature at least once, whatever hypothesis draws.
EXAMPLES: tuple[Script, ...] = (
    Script((Reply("hi", 3, 4),)),
    Script(
        (
            Calls((Call("add", '{"a":1,"b":2}'), Call("echo", '{"text":"x"}')), None, 5, 6),
            Calls((Call("fail", '{"reason":"boom"}'),), "working on it", 2, 1),
            Reply("done", 7, 8),
        ),
        input=("first", "second"),
    ),
    Script((Handoff("helper", 2, 2), Calls((Call("echo", '{"text":"y"}'),)), Reply("bye", 1, 9))),
    Script(
        (Calls((Call("add", '{"a":2,"b":3}'),)), Reply(structured("pydantic", "5", 1))),
        output="pydantic",
    ),
    Script((Reply(structured("dataclass", "ok", 2), 4, 4),), output="dataclass"),
    Script((Reply("not json", 1, 1),), output="pydantic"),
    Script((Calls((Call("add", '{"a":1,"b":1}'),), None, 2, 3), Fail("provider is down"))),
    Script((Calls((Call("no_such_tool", "{}"),)), Reply("unreached"))),
    Script((Calls((Call("add", "{"),)), Reply("after bad arguments"))),
    Script((Calls((Call("echo", '{"text":"a"}'),), None, 4, 4), Reply("late")), max_turns=1),
    Script(
        (Calls((Call("echo", '{"text":"a"}'),)), Reply("late")),
        output="dataclass",
        max_turns=1,
        max_turns_handler=True,
    ),
    Script((Calls((Call("echo", '{"text":"a"}'),)),)),
)


def over_scripts(check: Callable[[Script], None], generated: int) -> None:
    """Run `check` on every fixed example, then on `generated` scripts hypothesis draws (0: the
    fixed examples only)."""
    for fixed in reversed(EXAMPLES):
        check = example(fixed)(check)
    run = settings(
        max_examples=max(generated, 1),
        phases=[Phase.explicit] if generated == 0 else list(Phase),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(scripts())(check))
    run()
