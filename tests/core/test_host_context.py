"""runplane.host.HostContext on the default backend with a scripted model: turns, history,
events, tools, the authority policy, approvals, errors, options and sessions."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from agents import FunctionTool, ModelSettings, Session, SQLiteSession
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from agents.testing import ScriptedModel, assistant_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI
from support.backends import BackendPlugin, RecordingBackend
from support.host_program import PAID, POLICY, TOOLS, scripted_model, shape, user_texts

import runplane
from runplane.bridge import RunFailed, RunFinished, TextDelta, ToolCalled, ToolOutput
from runplane.host import HostContext, HostSetupError, ModelOptions, SupportsConversations
from runplane.host.authority import authority_text
from runplane.policy import ApprovalPolicy, PolicyError
from runplane.protocol import RunnerBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def host(model: ScriptedModel | None = None, **kwargs: Any) -> HostContext:
    return HostContext(
        system_prompt="You help.",
        tools=TOOLS,
        options=ModelOptions(model=model or scripted_model()),
        backend="openai",
        **kwargs,
    )


async def test_multi_turn_keeps_the_history_and_bridges_every_event() -> None:
    model = scripted_model()
    seen: list[Any] = []
    async with host(model, on_event=seen.append) as ctx:
        first = await ctx.run("What is the weather in Paris?")
        second = await ctx.run("What was my first question?")
    assert first.ok
    assert first.final_output == "done: Sunny in Paris"
    assert second.final_output == "you first asked: What is the weather in Paris?"
    # The second turn's model call carried the first turn: its question, tool call and answer.
    sent = model.calls[-1].input
    assert user_texts(sent) == ["What is the weather in Paris?", "What was my first question?"]
    assert any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in sent)
    # on_event got exactly the turns' events, in order.
    assert seen == [*first.events, *second.events]
    kinds = [e.kind for e in first.events]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    called = next(e for e in first.events if isinstance(e, ToolCalled))
    output = next(e for e in first.events if isinstance(e, ToolOutput))
    assert (called.tool_name, called.arguments) == ("get_weather", '{"city":"Paris"}')
    assert (output.call_id, output.output) == (called.call_id, "Sunny in Paris")
    assert "".join(e.delta for e in first.events if isinstance(e, TextDelta)) == first.final_output
    assert first.usage.requests == 2
    assert first.usage.total_tokens == 30


async def test_stream_yields_the_turn_as_it_happens_and_an_async_handler_is_awaited() -> None:
    handled: list[str] = []

    async def on_event(event: Any) -> None:
        handled.append(event.kind)

    async with host(on_event=on_event) as ctx:
        streamed = [e async for e in ctx.stream("Hello there")]
    assert streamed == list(ctx.turns[-1].events)
    assert handled == [e.kind for e in streamed]
    assert ctx.turns[-1].final_output == "echo: Hello there"


async def test_a_failed_turn_is_reported_and_the_conversation_goes_on() -> None:
    model = scripted_model()
    async with host(model) as ctx:
        failed = await ctx.run("break")
        after = await ctx.run("What was my first question?")
    assert failed.error is not None
    assert "broke" in str(failed.error)
    assert failed.final_output is None
    assert not failed.ok
    last = failed.events[-1]
    assert isinstance(last, RunFailed)
    assert last.error_type == "ModelBroke"
    assert after.ok
    assert after.final_output == "you first asked: break"


async def test_a_turn_refused_before_it_starts_is_a_failed_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with host() as ctx:
        monkeypatch.setenv("RUNPLANE_OPENAI_API", "soap")  # the facade refuses the run at once
        refused = await ctx.run("Hello")
        monkeypatch.delenv("RUNPLANE_OPENAI_API")
        after = await ctx.run("Hello again")
    assert isinstance(refused.error, runplane.RunplaneError)
    assert refused.result is None
    assert [e.kind for e in refused.events] == ["run_failed"]
    assert after.ok


async def test_a_model_with_no_reply_left_fails_the_turn() -> None:
    async with host(ScriptedModel([])) as ctx:
        turn = await ctx.run("Hello")
    assert turn.error is not None
    assert isinstance(turn.events[-1], RunFailed)


async def test_the_generator_loop_sends_prompts_and_none_ends_it() -> None:
    async with host() as ctx:
        chat = ctx.conversation()
        assert await chat.asend(None) is None
        one = await chat.asend("Hello")
        two = await chat.asend("What was my first question?")
        with pytest.raises(StopAsyncIteration):
            await chat.asend(None)
    assert one is not None
    assert one.final_output == "echo: Hello"
    assert two is not None
    assert two.final_output == "you first asked: Hello"


async def test_the_authority_is_enforced_and_told_to_the_model() -> None:
    PAID.clear()
    model = scripted_model()
    async with host(model, authority=POLICY) as ctx:
        small = await ctx.run("Please pay 50 euros.")
        large = await ctx.run("Please pay 500 euros.")
        assert PAID == [50]
        assert large.final_output is None
        assert [i.tool_name for i in large.interruptions] == ["pay"]
        assert [e.kind for e in large.events][-2:] == ["approval_requested", "run_finished"]
        with pytest.raises(HostSetupError, match="waits for approval of c"):
            await ctx.run("Hello")
        done = await ctx.approve(large.interruptions[0].call_id)
        assert PAID == [50, 500]
        assert done.final_output == "done: paid 500"
        decided = [e for e in done.events if e.kind == "approval_decided"]
        assert [shape(e)["approved"] for e in decided] == [True]
        assert done.events[0].run_id != large.events[0].run_id  # a new run of the SDK here
        waiting = await ctx.run("Please pay 700 euros.")
        rejected = await ctx.reject(message="Not today.")
    assert small.ok
    assert PAID == [50, 500]
    assert waiting.interruptions
    assert rejected.final_output == "done: Not today."
    assert model.calls[0].system_instructions == ctx.instructions
    assert ctx.instructions.startswith("You help.\n\nAuthority:")
    assert "large payments: calls of `pay` when `amount` > 100 need a person's approval" in (
        ctx.instructions
    )


async def test_decide_several_calls_and_its_errors() -> None:
    async with host(authority=POLICY) as ctx:
        with pytest.raises(HostSetupError, match="no turn waits for approval"):
            await ctx.approve()
        waiting = await ctx.run("Please pay 500 euros.")
        call = str(waiting.interruptions[0].call_id)
        assert [str(i.call_id) for i in ctx.pending_approvals] == [call]
        with pytest.raises(HostSetupError, match=f"does not wait for approval; .*{call!r}"):
            await ctx.approve("nope")
        with pytest.raises(HostSetupError, match="both approved and rejected"):
            await ctx.decide(approve=[call], reject={call: None})
        ctx.discard_pending()
        assert ctx.pending_approvals == []
        assert (await ctx.run("Hello")).ok


async def test_authority_from_a_file_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    ctx = host(authority=path)
    assert ctx.policy == ApprovalPolicy.from_toml(POLICY)
    with pytest.raises(PolicyError, match="no such policy file"):
        host(authority=str(tmp_path / "missing.toml"))
    with pytest.raises(HostSetupError, match="authority must be"):
        host(authority=42)


def test_authority_text_says_each_rule_and_the_default() -> None:
    policy = ApprovalPolicy.from_toml(
        """
default = "require"
[[rules]]
name = "reads"
tools = ["read_*"]
action = "allow"
[[rules]]
name = "vip"
tools = ["refund"]
when = [{ field = "tier", one_of = ["gold"] }, { field = "note", exists = true }]
"""
    )
    text = authority_text(policy)
    assert "- reads: calls of `read_*` need no approval." in text
    assert (
        "- vip: calls of `refund` when `tier` is one of ['gold'] and `note` is given need" in text
    )
    assert text.endswith("- Any other call: needs a person's approval.")


@dataclasses.dataclass
class DspatchOptions:
    model: str = "some-model"
    temperature: float | None = 0.25
    max_tokens: int | None = None


def test_options_objects_of_any_shape() -> None:
    ctx = HostContext(options=DspatchOptions())
    assert ctx.model.model == "some-model"
    assert ctx.model.settings.temperature == 0.25
    Named = collections.namedtuple("Named", ["model", "top_p"])
    ctx = HostContext(options=Named("m", 0.5))
    assert (ctx.model.model, ctx.model.settings.top_p) == ("m", 0.5)
    ctx = HostContext(options={"model": None, "settings": ModelSettings(temperature=0)})
    assert ctx.model.model == "gpt-4.1-mini"
    assert ctx.model.settings.temperature == 0
    assert HostContext().model.model == "gpt-4.1-mini"
    with pytest.raises(HostSetupError, match="has no `model` field"):
        HostContext(options=collections.namedtuple("Bare", ["x"])(1))
    with pytest.raises(HostSetupError, match="options must be"):
        HostContext(options=42)
    with pytest.raises(HostSetupError, match=r"options\.model must be"):
        HostContext(options=ModelOptions(model=3))  # type: ignore[arg-type]
    with pytest.raises(HostSetupError, match=r"options\.settings must be"):
        HostContext(options={"model": "m", "settings": {"temperature": 0}})


def test_a_client_is_wrapped_as_the_model_of_its_api() -> None:
    client = AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="k")
    chat = HostContext(options=ModelOptions(model="m"), client=client)
    assert isinstance(chat.model.model, OpenAIChatCompletionsModel)
    assert chat.model.api == "chat_completions"
    responses = HostContext(options=ModelOptions(model="m"), client=client, api="responses")
    assert isinstance(responses.model.model, OpenAIResponsesModel)
    with pytest.raises(HostSetupError, match="api='soap' is not one of"):
        HostContext(client=client, api="soap")
    with pytest.raises(HostSetupError, match="no client is given"):
        HostContext(api="responses")
    with pytest.raises(HostSetupError, match="a client is given with a model object"):
        HostContext(options=ModelOptions(model=ScriptedModel([])), client=client)


def test_setup_errors() -> None:
    with pytest.raises(HostSetupError, match="system_prompt must be a str"):
        HostContext(system_prompt=None)  # type: ignore[arg-type]
    with pytest.raises(HostSetupError, match="on_event must be callable"):
        HostContext(on_event="print")  # type: ignore[arg-type]
    with pytest.raises(HostSetupError, match="backend must be a backend name"):
        HostContext(backend=3)  # type: ignore[arg-type]
    with pytest.raises(HostSetupError, match="tools: str is not an Agents SDK tool"):
        HostContext(tools=["nope"])
    with pytest.raises(HostSetupError, match="tools must be a list of Agents SDK tools"):
        HostContext(tools="get_weather")  # type: ignore[arg-type]
    with pytest.raises(runplane.UnknownBackendError):
        HostContext(backend="no-such-backend")


async def test_not_open_and_bad_prompts_are_refused() -> None:
    ctx = host()
    with pytest.raises(HostSetupError, match="use `async with ctx:`"):
        await ctx.run("Hello")
    async with ctx:
        with pytest.raises(HostSetupError, match="a prompt is a str"):
            ctx.stream(3)  # type: ignore[arg-type]


class ConversationsBackend(RecordingBackend):
    """A backend that stores conversations (SupportsConversations), in memory here."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, Session] = {}

    def conversation_session(self, conversation_id: str) -> Session:
        return self.sessions.setdefault(conversation_id, SQLiteSession(conversation_id))


async def test_a_backend_that_stores_conversations_provides_the_session() -> None:
    backend = ConversationsBackend()
    assert isinstance(backend, SupportsConversations)
    assert isinstance(backend, RunnerBackend)
    registry = runplane.Registry(group="runplane-none")
    registry.register(BackendPlugin({"convo": lambda: backend}), name="convo")
    runner = runplane.runner("convo", registry=registry)
    for prompt in ("Hello", "What was my first question?"):
        async with HostContext(
            options=ModelOptions(model=scripted_model()), backend=runner, conversation_id="c-1"
        ) as ctx:
            turn = await ctx.run(prompt)
    # Two host contexts, one conversation: the second answered from the stored history.
    assert turn.final_output == "you first asked: Hello"
    assert list(backend.sessions) == ["c-1"]
    assert ctx.conversation_id == "c-1"
    assert [c[0] for c in backend.calls] == ["run_streamed", "run_streamed"]


async def test_a_given_session_is_used_and_left_open() -> None:
    session = SQLiteSession("mine")
    async with host(session=session) as ctx:
        await ctx.run("Hello")
        assert ctx.session is session
        assert ctx.conversation_id == "mine"
    assert user_texts(await session.get_items()) == ["Hello"]
    assert isinstance(ctx.turns[-1].events[-1], RunFinished)


async def test_host_tools_are_the_agents_tools() -> None:
    async with host() as ctx:
        assert [t.name for t in ctx.agent.tools if isinstance(t, FunctionTool)] == [
            "get_weather",
            "pay",
        ]
        assert ctx.agent.instructions == "You help."


async def test_assistant_message_helper_is_scripted() -> None:
    # The default ModelOptions with a scripted model object, no tools: a plain reply.
    model = ScriptedModel([[assistant_message("hi")]])
    async with HostContext(options=ModelOptions(model=model), backend="openai") as ctx:
        assert (await ctx.run("Hello")).final_output == "hi"


async def test_a_cancelled_turn_ends_cancelled_and_the_conversation_goes_on() -> None:
    def cancel_at_the_tool(event: Any) -> None:
        if isinstance(event, ToolCalled):
            ctx.cancel()

    ctx = host(on_event=cancel_at_the_tool)
    async with ctx:
        cancelled = await ctx.run("What is the weather in Paris?")
        ctx.on_event = None
        after = await ctx.run("What was my first question?")
    assert cancelled.cancelled
    assert cancelled.error is None
    assert cancelled.final_output is None
    assert [e.kind for e in cancelled.events][-1] == "run_cancelled"
    assert after.final_output == "you first asked: What is the weather in Paris?"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1),
        min_size=1,
        max_size=5,
    )
)
def test_every_turn_carries_every_earlier_prompt(prompts: list[str]) -> None:
    model = scripted_model()

    async def converse() -> list[Any]:
        async with host(model) as ctx:
            return [await ctx.run(p) for p in prompts]

    turns = asyncio.run(converse())
    assert all(t.ok for t in turns)
    for n, call in enumerate(model.calls):
        assert user_texts(call.input) == prompts[: n + 1]


async def test_a_failing_event_handler_fails_the_turn_and_stops_its_run() -> None:
    class HandlerBroke(RuntimeError):
        pass

    def on_event(event: Any) -> None:
        if isinstance(event, ToolCalled):
            raise HandlerBroke("the host's handler broke")

    PAID.clear()
    ctx = host(on_event=on_event)
    async with ctx:
        failed = await ctx.run("Please pay 20 euros.")
        ctx.on_event = None
        after = await ctx.run("Hello")
    assert isinstance(failed.error, HandlerBroke)
    assert failed.result is not None
    assert failed.result.is_complete
    last = failed.events[-1]
    assert isinstance(last, RunFailed)
    assert last.error_type == "HandlerBroke"
    assert after.ok


async def test_a_consumer_that_stops_early_stops_the_run() -> None:
    async with host() as ctx:
        turn = ctx.stream("What is the weather in Paris?")
        async for event in turn:
            if isinstance(event, ToolCalled):
                break
        with pytest.raises(HostSetupError, match="a turn is running already"):
            await ctx.run("Hello")  # until the stopped stream is closed
        await turn.aclose()  # type: ignore[attr-defined]
        stopped = ctx.turns[-1]
        after = await ctx.run("Hello")
    assert stopped.result is not None
    assert stopped.result.is_complete  # finished already, or cancelled by the close
    assert stopped.events[-1].kind == "tool_called"  # what the consumer took
    assert after.ok
