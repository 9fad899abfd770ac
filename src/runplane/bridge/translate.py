"""`Bridge`: turns one run's SDK stream events, or its result, into host events.

One translator serves every backend because it reads only what the SDK gives a program: stream
events, `RunResult.new_items`, `raw_responses`, `interruptions` and the usage. Streamed and not,
the events are the same but for the deltas: text and reasoning are told when their run item is
created (`TextDone`, `ReasoningDone`), and each model call's `ModelUsage` comes before the items
of its response. What a run cannot tell is documented in docs/host.md, "Event bridge".
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import deque
from collections.abc import Sequence
from typing import Any

from agents import RunContextWrapper
from agents.items import (
    HandoffCallItem,
    HandoffOutputItem,
    ItemHelpers,
    MessageOutputItem,
    ModelResponse,
    ReasoningItem,
    RunItem,
    ToolCallItem,
    ToolCallOutputItem,
)
from agents.models.fake_id import FAKE_RESPONSES_ID
from agents.result import RunResultBase
from agents.run_state import RunState
from agents.stream_events import (
    AgentUpdatedStreamEvent,
    RawResponsesStreamEvent,
    RunItemStreamEvent,
    StreamEvent,
)
from pydantic import BaseModel

from .. import _sdk
from .events import (
    ApprovalDecided,
    ApprovalRequested,
    HandedOff,
    HostEvent,
    ModelUsage,
    ReasoningDelta,
    ReasoningDone,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    TextDone,
    ToolCalled,
    ToolOutput,
    UsageTotals,
)

__all__ = ["Bridge", "is_cancellation", "output_text"]

_REASONING_DELTAS = ("response.reasoning_summary_text.delta", "response.reasoning_text.delta")


def is_cancellation(error: BaseException) -> bool:
    """Whether `error` says the run was cancelled rather than failed.

    asyncio's CancelledError; GeneratorExit, which a streamed run's observation sees when the
    consumer stops taking the stream early (closing it stops the run); and a backend's own error
    named `...CancelledError` (the durable backend's RunCancelledError), which the core cannot
    import.
    """
    return isinstance(error, asyncio.CancelledError | GeneratorExit) or type(
        error
    ).__name__.endswith("CancelledError")


def output_text(value: Any) -> str | None:
    """A final output as text: strings as they are, structured outputs as JSON, None as None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # circular or unserialisable containers
        return str(value)


def _dump(raw: Any) -> Any:
    return raw.model_dump(exclude_unset=False) if isinstance(raw, BaseModel) else raw


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _arguments(raw: Any) -> str:
    """A tool call's arguments as the model sent them; a hosted tool's call fields as JSON."""
    arguments = _field(raw, "arguments")
    if isinstance(arguments, str):
        return arguments
    data = raw.model_dump(mode="json", exclude_none=True) if isinstance(raw, BaseModel) else raw
    if not isinstance(data, dict):
        return json.dumps(data, default=str)
    rest = {k: v for k, v in data.items() if k not in ("id", "type", "status", "call_id")}
    return json.dumps(rest, ensure_ascii=False, default=str, sort_keys=True)


def _call_id(raw: Any) -> str:
    value = _field(raw, "call_id") or _field(raw, "id")
    return str(value) if value else ""


class Bridge:
    """The host events of one run, in the order the run makes them.

    Streamed: `on_start`, then `on_stream_event` for each stream event, then `on_result` or
    `on_error`. Not streamed: `from_result` (or `on_start`, then `on_run_items` + `on_result`
    once the result is in). Every call returns the events it made, oldest first.
    """

    def __init__(self, *, run_id: str, agent_name: str) -> None:
        self.run_id = run_id
        self.agent_name = agent_name  # the current agent: deltas and usage are told as its own
        self._tool_names: dict[str, str] = {}
        self._used_ids: set[str] = set()
        self._count = 0
        # Streamed: the ids given to the messages/reasoning items of the responses so far, by
        # output index in the current response, and in order until their run item arrives.
        self._by_index: dict[int, str] = {}
        self._messages: deque[str] = deque()
        self._reasoning: deque[str] = deque()
        self._skip_items = 0
        self._skip_responses = 0
        self._ended = False

    # --- identity ------------------------------------------------------------------------------

    def _new_id(self, provider_id: object, prefix: str) -> str:
        """The provider's item id when it is one (unique in this run), else one made here."""
        self._count += 1
        if (
            isinstance(provider_id, str)
            and provider_id not in ("", FAKE_RESPONSES_ID)
            and provider_id not in self._used_ids
        ):
            self._used_ids.add(provider_id)
            return provider_id
        made = f"{self.run_id}-{prefix}-{self._count}"
        self._used_ids.add(made)
        return made

    def _common(self, agent_name: str | None = None) -> dict[str, str]:
        return {"run_id": self.run_id, "agent_name": agent_name or self.agent_name}

    # --- start ---------------------------------------------------------------------------------

    def on_start(self, input: object = None) -> list[HostEvent]:
        """`RunStarted`, then `ApprovalDecided` for each decision taken on a RunState `input`.

        Call it before the run starts: the run changes its RunState in place (it takes the
        pending interruptions and replaces them by their outputs). The items and model responses
        the RunState holds are remembered, so that `on_run_items` does not tell them again (a
        resumed run's result repeats them). Called after the run took them, it tells no decisions
        and cannot tell which items are new.
        """
        if not isinstance(input, RunState):
            return [RunStarted(**self._common())]
        agent = _sdk.run_state_agent(input)
        if agent is not None:
            self.agent_name = agent.name
        events: list[HostEvent] = [RunStarted(**self._common())]
        items = _sdk.run_state_items(input)
        self._skip_items = len(items)
        self._skip_responses = len(_sdk.run_state_responses(input))
        for item in items:
            if isinstance(item, ToolCallItem):
                self._tool_names[_call_id(item.raw_item)] = self._tool_name(item)
        context = _sdk.run_state_context(input)
        for pending in input.get_interruptions():
            decided = self._decision(pending, context)
            if decided is not None:
                events.append(decided)
        return events

    def _decision(self, pending: Any, context: RunContextWrapper[Any] | None) -> HostEvent | None:
        tool_name = pending.tool_name or str(_field(pending.raw_item, "name") or "")
        call_id = _call_id(pending.raw_item)
        if context is None:
            return None
        approved = context.is_tool_approved(tool_name, call_id)
        if approved is None:
            return None
        message = None if approved else context.get_rejection_message(tool_name, call_id)
        return ApprovalDecided(
            **self._common(pending.agent.name),
            call_id=call_id,
            tool_name=tool_name,
            approved=approved,
            message=message,
        )

    # --- streamed ------------------------------------------------------------------------------

    def on_stream_event(self, event: StreamEvent) -> list[HostEvent]:
        """The host events one SDK stream event makes (often none)."""
        events: list[HostEvent] = []
        if isinstance(event, RawResponsesStreamEvent):
            events += self._on_raw(event.data)
        elif isinstance(event, RunItemStreamEvent):
            events += self._on_item(event.item)
        elif isinstance(event, AgentUpdatedStreamEvent):
            self.agent_name = event.new_agent.name
        return events

    def _on_raw(self, data: Any) -> list[HostEvent]:
        kind = getattr(data, "type", None)
        if kind == "response.created":
            self._by_index = {}
        elif kind == "response.output_item.added":
            item = data.item
            item_type = getattr(item, "type", None)
            if item_type == "message":
                self._by_index[data.output_index] = self._queue(self._messages, item, "msg")
            elif item_type == "reasoning":
                self._by_index[data.output_index] = self._queue(self._reasoning, item, "rs")
        elif kind == "response.output_text.delta":
            message_id = self._streamed_id(data.output_index, self._messages, "msg")
            return [TextDelta(**self._common(), message_id=message_id, delta=data.delta)]
        elif kind in _REASONING_DELTAS:
            item_id = self._streamed_id(data.output_index, self._reasoning, "rs")
            return [ReasoningDelta(**self._common(), item_id=item_id, delta=data.delta)]
        elif kind == "response.completed":
            return [self._usage(getattr(data.response, "usage", None), requests=1)]
        return []

    def _queue(self, queue: deque[str], item: Any, prefix: str) -> str:
        new = self._new_id(getattr(item, "id", None), prefix)
        queue.append(new)
        return new

    def _streamed_id(self, output_index: int, queue: deque[str], prefix: str) -> str:
        known = self._by_index.get(output_index)
        if known is None:  # a delta without its output_item.added: the item starts here
            known = self._by_index[output_index] = self._queue(queue, None, prefix)
        return known

    def _usage(self, usage: Any, *, requests: int) -> ModelUsage:
        return ModelUsage(
            **self._common(),
            requests=requests,
            input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            total_tokens=int(getattr(usage, "total_tokens", 0) or 0),
        )

    # --- items (both modes) --------------------------------------------------------------------

    def _tool_name(self, item: ToolCallItem) -> str:
        name = _field(item.raw_item, "name")
        return str(name) if name else str(_field(item.raw_item, "type") or "")

    def _on_item(self, item: RunItem) -> list[HostEvent]:
        agent = item.agent.name
        if isinstance(item, MessageOutputItem):
            queued = self._messages.popleft() if self._messages else None
            message_id = queued or self._new_id(item.raw_item.id, "msg")
            text = ItemHelpers.text_message_output(item)
            return [TextDone(**self._common(agent), message_id=message_id, text=text)]
        if isinstance(item, ReasoningItem):
            queued = self._reasoning.popleft() if self._reasoning else None
            item_id = queued or self._new_id(item.raw_item.id, "rs")
            raw = item.raw_item
            parts = [s.text for s in raw.summary] or [c.text for c in raw.content or []]
            return [ReasoningDone(**self._common(agent), item_id=item_id, text="\n\n".join(parts))]
        if isinstance(item, ToolCallItem):
            call_id = _call_id(item.raw_item)
            name = self._tool_names[call_id] = self._tool_name(item)
            return [
                ToolCalled(
                    **self._common(agent),
                    call_id=call_id,
                    tool_name=name,
                    arguments=_arguments(item.raw_item),
                )
            ]
        if isinstance(item, ToolCallOutputItem):
            call_id = _call_id(item.raw_item)
            return [
                ToolOutput(
                    **self._common(agent),
                    call_id=call_id,
                    tool_name=self._tool_names.get(call_id, ""),
                    output=self._tool_output(item),
                )
            ]
        if isinstance(item, HandoffOutputItem):
            source, target = item.source_agent.name, item.target_agent.name
            self.agent_name = target
            return [HandedOff(**self._common(source), source=source, target=target)]
        return []  # handoff calls (told by HandedOff), approvals (by on_result), MCP listings

    @staticmethod
    def _tool_output(item: ToolCallOutputItem) -> str:
        sent = _field(item.raw_item, "output")
        if isinstance(sent, str):
            return sent
        if sent is not None:
            return json.dumps(_dump(sent), ensure_ascii=False, default=str)
        return str(item.output)

    # --- not streamed --------------------------------------------------------------------------

    def on_run_items(self, result: RunResultBase) -> list[HostEvent]:
        """The events of a finished run's new items, each response's `ModelUsage` before them.

        A response's usage is placed before the first item made from its output (the stream
        tells it at `response.completed`, before those items); usages of responses whose output
        made no item follow in order.
        """
        items = list(result.new_items)[self._skip_items :]
        responses: Sequence[ModelResponse] = list(result.raw_responses)[self._skip_responses :]
        events: list[HostEvent] = []
        told = 0  # responses whose usage is told

        def tell_through(index: int) -> None:
            nonlocal told
            while told <= index:
                usage = responses[told].usage
                events.append(self._usage(usage, requests=usage.requests))
                told += 1

        for item in items:
            index = _response_of(item, responses, max(told - 1, 0))
            if index is not None:
                tell_through(index)
            events.extend(self._on_item(item))
        tell_through(len(responses) - 1)
        return events

    def from_result(self, result: RunResultBase) -> list[HostEvent]:
        """All the host events of a run that was not streamed: start, items, end.

        For a run resumed from a RunState, call `on_start(state)` before the run instead (the run
        changes the state in place), then `on_run_items(result)` and `on_result(result)`.
        """
        return [*self.on_start(), *self.on_run_items(result), *self.on_result(result)]

    # --- end -----------------------------------------------------------------------------------

    def on_result(self, result: RunResultBase) -> list[HostEvent]:
        """The terminal events: `ApprovalRequested` for each interruption, then `RunFinished`.

        A streamed run whose `cancel()` stopped it before a final output ends in `RunCancelled`
        instead (its stream just stops, without an error).
        """
        if self._ended:
            return []
        self._ended = True
        events: list[HostEvent] = []
        interruptions = list(getattr(result, "interruptions", ()))  # RunResult(Streaming) have it
        if _sdk.run_cancelled(result) and not interruptions and result.final_output is None:
            return [RunCancelled(**self._common())]
        for pending in interruptions:
            tool_name = pending.tool_name or str(_field(pending.raw_item, "name") or "")
            events.append(
                ApprovalRequested(
                    **self._common(pending.agent.name),
                    call_id=_call_id(pending.raw_item),
                    tool_name=tool_name,
                    arguments=_arguments(pending.raw_item),
                )
            )
        usage = result.context_wrapper.usage
        totals = UsageTotals(
            requests=usage.requests,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )
        final = None if interruptions else output_text(result.final_output)
        last = result.last_agent.name
        events.append(RunFinished(**self._common(last), final_output=final, usage=totals))
        return events

    def on_error(self, error: BaseException) -> list[HostEvent]:
        """The terminal event of a run that raised `error`: RunCancelled or RunFailed."""
        if self._ended:
            return []
        self._ended = True
        if is_cancellation(error):
            return [RunCancelled(**self._common())]
        return [RunFailed(**self._common(), error_type=type(error).__name__, message=str(error))]


def _response_of(item: RunItem, responses: Sequence[ModelResponse], start: int) -> int | None:
    """The index of the response (from `start` on) whose output made `item`, if a model made it."""
    if not isinstance(item, MessageOutputItem | ReasoningItem | ToolCallItem | HandoffCallItem):
        return None
    raw = _dump(item.raw_item)
    for index in range(start, len(responses)):
        if any(_dump(out) == raw for out in responses[index].output):
            return index
    return None
