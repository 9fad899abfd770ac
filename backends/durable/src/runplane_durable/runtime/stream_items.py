"""The SDK's stream events rebuilt from a run's event log, for watchers in any process.

A run's log holds each model call's output items and each tool's output, each once (a replay
writes none again), so a watcher gets what `run_streamed` gives its caller, minus what is not
stored: the raw response events (token deltas), and the items of tools that are not function
tools. What comes back, in the SDK's order:

- `AgentUpdatedStreamEvent` before the first model call, and after each handoff;
- per model call, its output items as `RunItemStreamEvent`s: `message_output_created`
  (`MessageOutputItem`), `reasoning_item_created` (`ReasoningItem`), `tool_called`
  (`ToolCallItem`), `handoff_requested` (`HandoffCallItem`);
- per function tool, `tool_output` (`ToolCallOutputItem`, its `output` rebuilt as the tool
  returned it when its class is imported here, else as plain data);
- per handoff taken, `handoff_occured` (`HandoffOutputItem`, the SDK's own spelling).

Items carry agents: the handle's starting agent and those reachable through its handoffs, by
name; an agent known only by its name (the watcher lacks its code) is a bare `Agent(name=...)`.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
from agents import Agent, Handoff
from agents.items import (
    HandoffCallItem,
    HandoffOutputItem,
    MessageOutputItem,
    ReasoningItem,
    RunItem,
    ToolCallItem,
    ToolCallOutputItem,
)
from agents.stream_events import AgentUpdatedStreamEvent, RunItemStreamEvent, StreamEvent
from openai.types.responses import ResponseOutputItem

from ..codec import plain_value
from ..errors import JournalSerializationError
from ..events import Event, HandoffRequested, ModelCalled, ToolCalled, UnknownEvent
from ..serde import load_value

__all__ = ["StreamRebuilder"]

_OUTPUT_ITEM: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseOutputItem)


def _agents(start: Agent[Any] | None) -> dict[str, Agent[Any]]:
    """Every agent reachable from `start` through handoffs that are agents, by name."""
    found: dict[str, Agent[Any]] = {}
    todo = [start] if start is not None else []
    while todo:
        agent = todo.pop()
        if agent.name in found:
            continue
        found[agent.name] = agent
        todo.extend(
            h for h in agent.handoffs if isinstance(h, Agent) and not isinstance(h, Handoff)
        )
    return found


class StreamRebuilder:
    """Turns parsed events, in order, into the SDK stream events they stand for."""

    def __init__(self, agent: Agent[Any] | None) -> None:
        self._known = _agents(agent)
        self._current: Agent[Any] | None = None
        self._handoffs: dict[str, tuple[Agent[Any], str]] = {}  # call id -> (source, target)

    def agent(self, name: str) -> Agent[Any]:
        if name not in self._known:
            self._known[name] = Agent(name=name)
        return self._known[name]

    def add(self, event: Event | UnknownEvent) -> list[StreamEvent]:
        if isinstance(event, ModelCalled):
            return self._model_call(event)
        if isinstance(event, ToolCalled) and self._current is not None:
            return [self._item("tool_output", self._tool_output(event, self._current))]
        return []

    def _item(self, name: Any, item: RunItem) -> RunItemStreamEvent:
        return RunItemStreamEvent(name=name, item=item)

    def _model_call(self, event: ModelCalled) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        agent = self.agent(event.agent)
        if agent is not self._current:
            for taken, (source, target) in list(self._handoffs.items()):
                if target == agent.name:  # the handoff the previous turn asked for was taken
                    del self._handoffs[taken]
                    out.append(self._item("handoff_occured", _handoff_output(taken, source, agent)))
            self._current = agent
            out.append(AgentUpdatedStreamEvent(new_agent=agent))
        handoffs = {c.call_id: c.to for c in event.calls if isinstance(c, HandoffRequested)}
        for raw in event.output or []:
            try:
                item = _OUTPUT_ITEM.validate_python(raw)
            except pydantic.ValidationError:
                continue  # an output item this SDK version does not know
            kind = getattr(item, "type", None)
            call_id = getattr(item, "call_id", None)
            if kind == "message":
                out.append(self._item("message_output_created", MessageOutputItem(agent, item)))
            elif kind == "reasoning":
                out.append(self._item("reasoning_item_created", ReasoningItem(agent, item)))
            elif kind == "function_call" and call_id in handoffs:
                self._handoffs[call_id] = (agent, handoffs[call_id])
                out.append(self._item("handoff_requested", HandoffCallItem(agent, item)))
            elif kind == "function_call":
                out.append(self._item("tool_called", ToolCallItem(agent, item)))
        return out

    def _tool_output(self, event: ToolCalled, agent: Agent[Any]) -> ToolCallOutputItem:
        output = _rebuilt(event.output) if event.output_preview is None else event.output_preview
        shown = output if isinstance(output, str) else _text(output)
        raw = {"call_id": event.call_id, "output": shown, "type": "function_call_output"}
        return ToolCallOutputItem(agent=agent, raw_item=raw, output=output)


def _rebuilt(encoded: Any) -> Any:
    if encoded is None:
        return None
    try:
        return load_value(encoded)
    except (JournalSerializationError, AttributeError, KeyError, TypeError, ValueError):
        return plain_value(encoded)  # its class is not imported here: its data


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _handoff_output(call_id: str, source: Agent[Any], target: Agent[Any]) -> HandoffOutputItem:
    # The text the SDK gives the model for a handoff (`Handoff.get_transfer_message`).
    raw = {
        "call_id": call_id,
        "output": json.dumps({"assistant": target.name}),
        "type": "function_call_output",
    }
    return HandoffOutputItem(
        agent=source,
        raw_item=raw,  # type: ignore[arg-type]
        source_agent=source,
        target_agent=target,
    )
