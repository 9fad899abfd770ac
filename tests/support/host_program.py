"""One host program for the host context's tests: the same conversation on any backend.

A scripted "model" that decides from what it is sent (so it proves what the backend sent it): it
calls `get_weather` for a weather question, `pay` for a payment (the policy asks approval above
100), answers a tool's output with "done: OUTPUT", repeats the conversation's first question when
asked for it (so an answer proves the history was carried), and fails on "break".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

from agents import function_tool
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage

from runplane.bridge import HostEvent
from runplane.host import HostContext, TurnResult

POLICY = """
[[rules]]
name = "large payments"
tools = ["pay"]
when = [{ field = "amount", gt = 100 }]
"""

PAID: list[int] = []
WEATHER_ASKED: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    WEATHER_ASKED.append(city)
    return f"Sunny in {city}"


@function_tool
def pay(amount: int) -> str:
    """Pay an amount of euros."""
    PAID.append(amount)
    return f"paid {amount}"


TOOLS = [get_weather, pay]
WEATHER_TOOLS = [get_weather]  # one clear tool, for the small real model


class ModelBroke(RuntimeError):
    """The scripted model's failure on "break"."""


def _text(item: Any) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def user_texts(items: Any) -> list[str]:
    """The user messages of a model call's input, oldest first."""
    if isinstance(items, str):
        return [items]
    return [_text(i) for i in items if isinstance(i, dict) and i.get("role") == "user"]


def respond(call: ModelCall, ids: Iterator[int]) -> Any:
    n = next(ids)
    items = (
        call.input if isinstance(call.input, list) else [{"role": "user", "content": call.input}]
    )
    last = items[-1] if items else {}
    usage = Usage(requests=1, input_tokens=10, output_tokens=5, total_tokens=15)
    if isinstance(last, dict) and last.get("type") == "function_call_output":
        return ModelStep(
            output=[assistant_message(f"done: {last['output']}", item_id=f"m{n}")], usage=usage
        )
    asked = user_texts(items)[-1]
    if asked == "break":
        return ModelBroke("the scripted model broke, as asked")
    if m := re.search(r"weather in (\w+)", asked):
        out = function_call("get_weather", {"city": m.group(1)}, call_id=f"c{n}")
    elif m := re.search(r"pay (\d+)", asked):
        out = function_call("pay", {"amount": int(m.group(1))}, call_id=f"c{n}")
    elif "first question" in asked:
        out = assistant_message(f"you first asked: {user_texts(items)[0]}", item_id=f"m{n}")
    else:
        out = assistant_message(f"echo: {asked}", item_id=f"m{n}")
    return ModelStep(output=[out], usage=usage)


def scripted_model(calls: int = 40) -> ScriptedModel:
    ids = itertools.count(1)
    return ScriptedModel([ModelStep.respond(lambda c: respond(c, ids)) for _ in range(calls)])


def shape(event: HostEvent) -> dict[str, Any]:
    """An event without what differs between runs by design (its run id)."""
    data = event.to_dict()
    data.pop("run_id")
    return data


async def conversation(ctx: HostContext) -> list[TurnResult]:
    """The conversation every backend must hold alike: a tool, memory, an error, an approval."""
    turns = [await ctx.run("What is the weather in Paris?")]
    turns.append(await ctx.run("What was my first question?"))
    turns.append(await ctx.run("break"))
    turns.append(await ctx.run("Please pay 500 euros."))
    turns.append(await ctx.approve(turns[-1].interruptions[0].call_id))
    turns.append(await ctx.run("Please pay 700 euros."))
    turns.append(await ctx.reject(message="Not today."))
    turns.append(await ctx.run("What was my first question?"))
    return turns
