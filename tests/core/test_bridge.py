"""The event bridge's translation: what a host is told about text, reasoning, tools, handoffs,
approvals, usage and the end of a run, streamed and not."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
from typing import Any

import pytest
from agents import Agent, RunResultStreaming, function_tool
from agents.models.fake_id import FAKE_RESPONSES_ID
from agents.run import AgentRunner
from agents.run_state import RunState
from agents.stream_events import RawResponsesStreamEvent
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from openai.types.responses import ResponseFunctionWebSearch, ResponseReasoningItem
from openai.types.responses.response_function_web_search import ActionSearch
from openai.types.responses.response_reasoning_item import Summary
from openai.types.responses.response_text_delta_event import ResponseTextDeltaEvent
from pydantic import BaseModel

import runplane
from runplane.bridge import (
    ApprovalDecided,
    ApprovalRequested,
    Bridge,
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
    bridge,
)
from runplane.bridge.translate import _arguments, is_cancellation, output_text

R = {"run_id": "R"}


@function_tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@function_tool(needs_approval=True)
async def danger(x: str) -> str:
    """Does something that needs a human's yes."""
    return f"did {x}"


def _usage(i: int, o: int) -> Usage:
    return Usage(requests=1, input_tokens=i, output_tokens=o, total_tokens=i + o)


def _agents(*extra: ModelStep) -> Agent[Any]:
    """main: reasoning + text + a tool call, then a handoff to helper, who asks for approval."""
    reasoning = ResponseReasoningItem(
        id="rs-1",
        type="reasoning",
        summary=[
            Summary(text="think a", type="summary_text"),
            Summary(text="think b", type="summary_text"),
        ],
    )
    model = ScriptedModel(
        [
            ModelStep(
                output=[
                    reasoning,
                    assistant_message("hello there", item_id="m1"),
                    function_call("add", '{"a":1,"b":2}', call_id="c1"),
                ],
                usage=_usage(3, 4),
            ),
            ModelStep(output=[function_call("transfer_to_helper", "{}", call_id="c2")]),
            ModelStep(
                output=[function_call("danger", '{"x":"y"}', call_id="c3")], usage=_usage(1, 1)
            ),
            *extra,
        ]
    )
    helper = Agent(name="helper", model=model, tools=[danger])
    return Agent(name="main", model=model, tools=[add], handoffs=[helper])


FIRST_TURN: list[HostEvent] = [
    RunStarted(**R, agent_name="main"),
    ReasoningDelta(**R, agent_name="main", item_id="rs-1", delta="think a"),
    ReasoningDelta(**R, agent_name="main", item_id="rs-1", delta="think b"),
    TextDelta(**R, agent_name="main", message_id="m1", delta="hello there"),
    ModelUsage(**R, agent_name="main", requests=1, input_tokens=3, output_tokens=4, total_tokens=7),
    ReasoningDone(**R, agent_name="main", item_id="rs-1", text="think a\n\nthink b"),
    TextDone(**R, agent_name="main", message_id="m1", text="hello there"),
    ToolCalled(**R, agent_name="main", call_id="c1", tool_name="add", arguments='{"a":1,"b":2}'),
    ToolOutput(**R, agent_name="main", call_id="c1", tool_name="add", output="3"),
    ModelUsage(**R, agent_name="main", requests=1, input_tokens=0, output_tokens=0, total_tokens=0),
    HandedOff(**R, agent_name="main", source="main", target="helper"),
    ModelUsage(
        **R, agent_name="helper", requests=1, input_tokens=1, output_tokens=1, total_tokens=2
    ),
    ToolCalled(**R, agent_name="helper", call_id="c3", tool_name="danger", arguments='{"x":"y"}'),
    ApprovalRequested(
        **R, agent_name="helper", call_id="c3", tool_name="danger", arguments='{"x":"y"}'
    ),
    RunFinished(
        **R,
        agent_name="helper",
        final_output=None,
        usage=UsageTotals(requests=3, input_tokens=4, output_tokens=5, total_tokens=9),
    ),
]


def _without_deltas(events: list[HostEvent]) -> list[HostEvent]:
    return [e for e in events if not isinstance(e, TextDelta | ReasoningDelta)]


async def _streamed(agent: Agent[Any], run_input: Any, *, told: object = None) -> list[HostEvent]:
    result = AgentRunner().run_streamed(agent, run_input)
    return [event async for event in bridge(result, run_id="R", input=told)]


def test_a_streamed_run_is_told_in_order_with_deltas_usage_and_approvals() -> None:
    assert asyncio.run(_streamed(_agents(), "hi")) == FIRST_TURN


def test_a_run_not_streamed_is_told_the_same_but_for_the_deltas() -> None:
    result = asyncio.run(AgentRunner().run(_agents(), "hi"))
    events = Bridge(run_id="R", agent_name="main").from_result(result)
    assert events == _without_deltas(FIRST_TURN)


def _paused_state() -> tuple[Agent[Any], RunState[Any, Any]]:
    agent = _agents(ModelStep(output=[assistant_message("done", item_id="m2")], usage=_usage(2, 2)))
    result = asyncio.run(AgentRunner().run(agent, "hi"))
    assert result.interruptions
    return agent, result.to_state()


_RESUMED_TAIL: list[HostEvent] = [
    ModelUsage(
        **R, agent_name="helper", requests=1, input_tokens=2, output_tokens=2, total_tokens=4
    ),
    TextDone(**R, agent_name="helper", message_id="m2", text="done"),
]


@pytest.mark.parametrize(
    ("approve", "message", "output"),
    [(True, None, "did y"), (False, "not today", "not today")],
)
@pytest.mark.parametrize("streamed", [True, False])
def test_a_resumed_run_tells_the_decisions_and_only_what_is_new(
    approve: bool, message: str | None, output: str, streamed: bool
) -> None:
    agent, state = _paused_state()
    pending = state.get_interruptions()[0]
    if approve:
        state.approve(pending)
    else:
        state.reject(pending, rejection_message=message)
    if streamed:
        events = asyncio.run(_streamed(agent, state, told=state))
        events = _without_deltas(events)
    else:
        translator = Bridge(run_id="R", agent_name="main")
        events = translator.on_start(state)  # before the run, which changes the state
        result = asyncio.run(AgentRunner().run(agent, state))
        events += translator.on_run_items(result) + translator.on_result(result)
    assert events[:3] == [
        RunStarted(**R, agent_name="helper"),  # the agent the state goes on with
        ApprovalDecided(
            **R,
            agent_name="helper",
            call_id="c3",
            tool_name="danger",
            approved=approve,
            message=message,
        ),
        # the tool's name comes from the call the state holds, which is not told again
        ToolOutput(**R, agent_name="helper", call_id="c3", tool_name="danger", output=output),
    ]
    assert events[3:-1] == _RESUMED_TAIL
    assert isinstance(events[-1], RunFinished)
    assert events[-1].final_output == "done"


def test_undecided_approvals_of_a_resumed_state_are_not_told_as_decided() -> None:
    _, state = _paused_state()
    events = Bridge(run_id="R", agent_name="main").on_start(state)
    assert events == [RunStarted(**R, agent_name="helper")]


def test_a_failing_model_is_told_as_run_failed_then_raised_again() -> None:
    class ProviderDown(Exception):
        pass

    agent = Agent(name="a", model=ScriptedModel([ModelStep.raise_error(ProviderDown("down"))]))
    seen: list[HostEvent] = []

    async def consume() -> None:
        async for event in bridge(AgentRunner().run_streamed(agent, "hi"), run_id="R"):
            seen.append(event)

    with pytest.raises(ProviderDown, match="down"):
        asyncio.run(consume())
    assert seen == [
        RunStarted(**R, agent_name="a"),
        RunFailed(**R, agent_name="a", error_type="ProviderDown", message="down"),
    ]


def test_a_cancelled_stream_ends_with_run_cancelled() -> None:
    @function_tool
    async def slow() -> str:
        """Takes a while."""
        await asyncio.sleep(30)
        return "late"

    agent = Agent(
        name="a",
        tools=[slow],
        model=ScriptedModel([[function_call("slow", "{}", call_id="s")], [assistant_message("x")]]),
    )

    async def consume() -> list[HostEvent]:
        result = AgentRunner().run_streamed(agent, "hi")
        seen = []
        async for event in bridge(result, run_id="R"):
            seen.append(event)
            if isinstance(event, ToolCalled):
                result.cancel()
        return seen

    seen = asyncio.run(asyncio.wait_for(consume(), 10))
    assert seen[-1] == RunCancelled(**R, agent_name="a")
    assert [type(e) for e in seen].count(RunCancelled) == 1


def test_cancellations_are_told_apart_from_failures() -> None:
    class RunCancelledError(Exception):  # the durable backend's name, which core cannot import
        pass

    bridge_ = Bridge(run_id="R", agent_name="a")
    assert bridge_.on_error(asyncio.CancelledError()) == [RunCancelled(**R, agent_name="a")]
    assert bridge_.on_error(ValueError("late")) == []  # one terminal event per run
    assert is_cancellation(RunCancelledError("cancelled by an operator"))
    assert not is_cancellation(RuntimeError("x"))


def test_bridge_refuses_a_result_that_is_not_streaming() -> None:
    agent = Agent(name="a", model=ScriptedModel([[assistant_message("x")]]))
    result = asyncio.run(AgentRunner().run(agent, "hi"))

    async def consume() -> None:
        async for _ in bridge(result):  # type: ignore[arg-type]
            pass

    with pytest.raises(TypeError, match=r"RunResultStreaming of Runner\.run_streamed") as info:
        asyncio.run(consume())
    assert "from_result" in str(info.value)


def _repeated_ids() -> Agent[Any]:
    model = ScriptedModel(
        [
            [assistant_message("one", item_id="same"), function_call("add", "{}", call_id="1")],
            [assistant_message("two", item_id="same"), function_call("add", "{}", call_id="2")],
            [assistant_message("three", item_id=FAKE_RESPONSES_ID)],
        ]
    )
    return Agent(name="a", model=model, tools=[add])


def test_message_ids_are_unique_in_a_run_when_the_provider_repeats_or_fakes_them() -> None:
    events = asyncio.run(_streamed(_repeated_ids(), "hi"))
    done = [e for e in events if isinstance(e, TextDone)]
    ids = [e.message_id for e in done]
    assert ids[0] == "same"
    assert len(set(ids)) == 3
    assert all(i.startswith("R-msg-") for i in ids[1:])
    for message in done:  # each message's deltas carry its id and add up to its text
        deltas = [
            e.delta
            for e in events
            if isinstance(e, TextDelta) and e.message_id == message.message_id
        ]
        assert "".join(deltas) == message.text
    result = asyncio.run(AgentRunner().run(_repeated_ids(), "hi"))
    told = Bridge(run_id="R", agent_name="a").from_result(result)
    assert [e.message_id for e in told if isinstance(e, TextDone)] == ids


def test_a_delta_without_its_item_added_event_still_gets_an_id() -> None:
    bridge_ = Bridge(run_id="R", agent_name="a")
    delta = ResponseTextDeltaEvent(
        type="response.output_text.delta",
        item_id=FAKE_RESPONSES_ID,
        output_index=0,
        content_index=0,
        delta="hi",
        logprobs=[],
        sequence_number=1,
    )
    first = bridge_.on_stream_event(RawResponsesStreamEvent(data=delta))
    second = bridge_.on_stream_event(RawResponsesStreamEvent(data=delta))
    assert first == [TextDelta(**R, agent_name="a", message_id="R-msg-1", delta="hi")]
    assert second == [TextDelta(**R, agent_name="a", message_id="R-msg-1", delta="hi")]


class Verdict(BaseModel):
    answer: str


@dataclasses.dataclass
class Note:
    answer: str


def test_final_outputs_are_told_as_text() -> None:
    circular: list[Any] = []
    circular.append(circular)
    assert output_text("x") == "x"
    assert output_text(None) is None
    assert output_text(Verdict(answer="ok")) == '{"answer":"ok"}'
    assert output_text(Note(answer="é")) == '{"answer": "é"}'
    assert output_text({"n": 1}) == '{"n": 1}'
    assert output_text(circular) == "[[...]]"


def test_a_structured_final_output_is_told_as_json() -> None:
    agent = Agent(
        name="a",
        output_type=Verdict,
        model=ScriptedModel([[assistant_message('{"answer":"yes"}')]]),
    )
    events = asyncio.run(_streamed(agent, "hi"))
    assert isinstance(events[-1], RunFinished)
    assert events[-1].final_output == '{"answer":"yes"}'


def test_hosted_tool_calls_are_told_with_their_fields_as_arguments() -> None:
    raw = ResponseFunctionWebSearch(
        id="ws-1",
        type="web_search_call",
        status="completed",
        action=ActionSearch(type="search", query="weather"),
    )
    assert _arguments(raw) == '{"action": {"query": "weather", "type": "search"}}'
    assert _arguments({"type": "x", "id": "1", "arguments": '{"a":1}'}) == '{"a":1}'
    assert _arguments(["not", "a", "mapping"]) == '["not", "a", "mapping"]'


class HostObserver:
    def __init__(self) -> None:
        self.events: list[HostEvent] = []
        self.run_ids: set[str] = set()

    @runplane.hookimpl
    def runplane_host_event(self, run: runplane.RunInfo, event: HostEvent) -> None:
        self.run_ids.add(run.run_id)
        self.events.append(event)


def test_the_hook_tells_run_started_before_the_backend_runs() -> None:
    observer = HostObserver()
    name = runplane.register_plugin(observer, name="test-host-observer")
    seen_at_first_model_call: list[HostEvent] = []

    def respond(call: Any) -> ModelStep:
        seen_at_first_model_call.extend(observer.events)
        return ModelStep(output=[assistant_message("hi")])

    try:
        agent = Agent(name="a", model=ScriptedModel([ModelStep.respond(respond)]))
        result = runplane.runner("openai").run_sync(agent, "x")
    finally:
        runplane.default_registry().unregister(name)
    (run_id,) = observer.run_ids
    assert seen_at_first_model_call == [RunStarted(run_id=run_id, agent_name="a")]
    assert observer.events == Bridge(run_id=run_id, agent_name="a").from_result(result)


def test_the_hook_tells_a_run_that_failed_to_start() -> None:
    observer = HostObserver()
    name = runplane.register_plugin(observer, name="test-host-observer")
    try:
        with pytest.raises(TypeError):
            runplane.runner("openai").run_sync(Agent(name="a"), "x", max_turns="many")  # type: ignore[arg-type]
    finally:
        runplane.default_registry().unregister(name)
    assert [type(e) for e in observer.events] == [RunStarted, RunFailed]


def test_without_a_host_event_plugin_no_bridge_is_made() -> None:
    code = """
import sys, runplane
from agents import Agent
from agents.testing import ScriptedModel, assistant_message

class StreamOnly:
    @runplane.hookimpl
    def runplane_stream_event(self, run, event):
        pass

runplane.register_plugin(StreamOnly(), name="stream-only")
agent = Agent(name="a", model=ScriptedModel([[assistant_message("hi")]]))
assert runplane.runner("openai").run_sync(agent, "x").final_output == "hi"
assert "runplane.bridge.translate" not in sys.modules, "the translator was imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_streamed_results_stay_the_sdks_own() -> None:
    observer = HostObserver()
    name = runplane.register_plugin(observer, name="test-host-observer")

    async def consume() -> RunResultStreaming:
        result = runplane.runner("openai").run_streamed(
            Agent(name="a", model=ScriptedModel([[assistant_message("hi")]])), "x"
        )
        async for _ in result.stream_events():
            pass
        return result

    try:
        result = asyncio.run(consume())
    finally:
        runplane.default_registry().unregister(name)
    assert type(result) is RunResultStreaming
    assert observer.events[-1] == RunFinished(
        run_id=next(iter(observer.run_ids)),
        agent_name="a",
        final_output="hi",
        usage=UsageTotals(requests=1),
    )


def test_bridge_names_the_run_as_the_hooks_do_or_by_a_random_hex() -> None:
    observer = HostObserver()
    name = runplane.register_plugin(observer, name="test-host-observer")

    async def run_ids() -> tuple[str, str]:
        def agent() -> Agent[Any]:
            return Agent(name="a", model=ScriptedModel([[assistant_message("hi")]]))

        through = [e async for e in bridge(runplane.runner("openai").run_streamed(agent(), "x"))]
        direct = [e async for e in bridge(AgentRunner().run_streamed(agent(), "x"))]
        return through[0].run_id, direct[0].run_id

    try:
        through, direct = asyncio.run(run_ids())
    finally:
        runplane.default_registry().unregister(name)
    assert observer.run_ids == {through}
    assert len(direct) == 32
    assert int(direct, 16) >= 0
    assert direct != through


def test_a_consumer_that_stops_early_is_told_to_the_hook_as_a_cancelled_run() -> None:
    observer = HostObserver()
    name = runplane.register_plugin(observer, name="test-host-observer")

    async def stop_at_the_tool_call() -> None:
        agent = Agent(
            name="a",
            tools=[add],
            model=ScriptedModel(
                [[function_call("add", '{"a":1,"b":2}', call_id="c")], [assistant_message("3")]]
            ),
        )
        result = runplane.runner("openai").run_streamed(agent, "x")
        # aclosing: the stream is closed at the break (GeneratorExit in the observation), not
        # left to asyncio.run's shutdown (which cancels it)
        async with contextlib.aclosing(result.stream_events()) as events:  # type: ignore[type-var]
            async for event in events:
                if getattr(event, "name", None) == "tool_called":
                    break

    try:
        asyncio.run(stop_at_the_tool_call())
    finally:
        runplane.default_registry().unregister(name)
    kinds = [type(e) for e in observer.events]
    assert kinds[-1] is RunCancelled
    assert ToolCalled in kinds
    assert RunFinished not in kinds
