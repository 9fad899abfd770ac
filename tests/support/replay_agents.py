"""Agents for the replay and fork tests, importable by reference (`support.replay_agents:agent`).

The model asks for `lookup` once per city in `CITIES`, then answers with what it was told. It
derives its step from the tool outputs already in its input, so one script serves a recording,
a fork's live part and anything in between. `CALLS` counts every real model call and tool
execution (a replayed step reaches neither), per agent variant. The variants are the program
"changed since the run": other instructions, a tool with another description, a tool added, a
loop that stops at the first tool.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agents import Agent, FunctionTool, function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call

CITIES = ("Paris", "Oslo", "Lima")
PROMPT = "What is the weather in Paris, Oslo and Lima?"
INSTRUCTIONS = "Look up each city's weather with lookup, then report."
TOOL_OUTPUT = "function_call_output"
CALLS: Counter[str] = Counter()  # "model", "lookup", "extra": real calls, never replayed ones


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def respond(call: ModelCall) -> list[Any]:
    items = call.input if isinstance(call.input, list) else []
    outputs = [
        str(_field(i, "output")) for i in items if _field(i, "type") == "function_call_output"
    ]
    CALLS["model"] += 1
    if len(outputs) < len(CITIES):
        city = CITIES[len(outputs)]
        return [function_call("lookup", {"city": city}, call_id=f"call-{len(outputs)}")]
    return [assistant_message("weather: " + "; ".join(outputs))]


def model() -> ScriptedModel:
    return ScriptedModel([ModelStep.respond(respond) for _ in range(5000)])


def _lookup(description: str) -> FunctionTool:
    def lookup(city: str) -> str:
        CALLS["lookup"] += 1
        return f"{city}: {len(city) * 3} C"

    lookup.__doc__ = description
    return function_tool(lookup)


@function_tool
def extra(text: str) -> str:
    """Echo a text (a tool the recorded program did not have)."""
    CALLS["extra"] += 1
    return text


lookup = _lookup("Look up a city's weather.")
agent = Agent(name="weather", instructions=INSTRUCTIONS, model=model(), tools=[lookup])

# The program changed since the run, one way each.
other_instructions = agent.clone(instructions="Report each city's weather in one line.")
other_tool = agent.clone(tools=[_lookup("Look up the weather of a city, in Celsius.")])
more_tools = agent.clone(tools=[lookup, extra])
first_tool_only = agent.clone(tool_use_behavior="stop_on_first_tool")
# The same program with another model script: a replay never asks it anything.
other_script = agent.clone(model=ScriptedModel([]))
renamed = agent.clone(name="climate")
not_an_agent = "weather"


@function_tool(needs_approval=True)
def pay(amount: int) -> str:
    """Pay an amount."""
    CALLS["pay"] += 1
    return f"paid {amount}"


def _payments(amounts: tuple[int, ...]) -> Any:
    def respond(call: ModelCall) -> list[Any]:
        items = call.input if isinstance(call.input, list) else []
        outputs = [str(_field(i, "output")) for i in items if _field(i, "type") == TOOL_OUTPUT]
        CALLS["model"] += 1
        if len(outputs) < len(amounts):
            n = len(outputs)
            return [function_call("pay", {"amount": amounts[n]}, call_id=f"p{n + 1}")]
        return [assistant_message("done: " + ", ".join(outputs))]

    return ScriptedModel([ModelStep.respond(respond) for _ in range(5000)])


# Agents whose one tool waits for approval: paying once, and twice (two stops).
payer = Agent(name="payer", model=_payments((5,)), tools=[pay])
payer_twice = Agent(name="payer", model=_payments((5, 7)), tools=[pay])
