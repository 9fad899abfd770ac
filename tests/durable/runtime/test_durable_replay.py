"""Journal and replay: what a resumed or finished run does, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pydantic
import pytest
from agents import Agent, RunContextWrapper, StopAtTools, function_tool
from agents.items import ToolCallOutputItem
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from runplane_durable import (
    DurableBackend,
    JournalSerializationError,
    ReplayDivergenceError,
    RunCancelledError,
    RunInputMismatchError,
    last_run_id,
    run_id,
)
from support.durable import run_async

import runplane


class Stop(BaseException):
    """Stands in for a process dying mid-run: escapes the SDK without being handled."""


class Ledger:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stop_at: str | None = None


def _tools(ledger: Ledger) -> list[Any]:
    @function_tool
    def lookup(key: str) -> str:
        """Look a key up."""
        ledger.calls.append(f"lookup:{key}")
        if ledger.stop_at == key:
            raise Stop
        return f"value-of-{key}"

    return [lookup]


def _script() -> list[Any]:
    return [
        ModelStep(
            output=[function_call("lookup", {"key": "a"}, call_id="c1")],
            usage=Usage(requests=1, input_tokens=10, output_tokens=2, total_tokens=12),
        ),
        ModelStep(
            output=[
                function_call("lookup", {"key": "b"}, call_id="c2"),
                function_call("lookup", {"key": "c"}, call_id="c3"),
            ],
            usage=Usage(requests=1, input_tokens=20, output_tokens=4, total_tokens=24),
        ),
        ModelStep(
            output=[assistant_message("a, b and c looked up")],
            usage=Usage(requests=1, input_tokens=30, output_tokens=5, total_tokens=35),
        ),
    ]


def _agent(ledger: Ledger, model: Any, instructions: str = "Look things up.") -> Agent[Any]:
    return Agent(name="clerk", instructions=instructions, model=model, tools=_tools(ledger))


async def _run(backend: DurableBackend, agent: Agent[Any], mode: str, **kw: Any) -> Any:
    if mode == "run":
        return await backend.run(agent, "look up a, b, c", **kw)
    if mode == "run_sync":
        return await asyncio.to_thread(backend.run_sync, agent, "look up a, b, c", **kw)
    result = backend.run_streamed(agent, "look up a, b, c", **kw)
    async for _ in result.stream_events():
        pass
    return result


def _summary(result: Any) -> tuple[Any, ...]:
    return (
        result.final_output,
        [type(i).__name__ for i in result.new_items],
        result.to_input_list(),
        dataclasses.asdict(result.context_wrapper.usage),
    )


MODES = ["run", "run_sync", "run_streamed"]


@pytest.mark.parametrize("mode", MODES)
def test_finished_run_replays_without_model_or_tools(backend: DurableBackend, mode: str) -> None:
    ledger = Ledger()

    async def go() -> None:
        with run_id(f"finished-{mode}"):
            first = await _run(backend, _agent(ledger, ScriptedModel(_script())), mode)
        assert ledger.calls == ["lookup:a", "lookup:b", "lookup:c"]
        silent = ScriptedModel([])  # any model call would raise UnexpectedModelCall
        for replay_mode in MODES:
            with run_id(f"finished-{mode}"):
                again = await _run(backend, _agent(ledger, silent), replay_mode)
            assert _summary(again) == _summary(first), replay_mode
        assert ledger.calls == ["lookup:a", "lookup:b", "lookup:c"]
        record = await backend.get_run(f"finished-{mode}")
        assert record.status == "completed"
        assert record.final_output == {"json": "a, b and c looked up"}
        assert (record.model_calls, record.tool_calls, record.total_tokens) == (3, 3, 71)

    run_async(go())


@pytest.mark.parametrize("mode", MODES)
def test_interrupted_run_resumes_from_the_journal(backend: DurableBackend, mode: str) -> None:
    ledger = Ledger()
    ledger.stop_at = "c"  # dies inside the third tool, after a and b completed

    async def go() -> None:
        with run_id(f"resume-{mode}"), pytest.raises(Stop):
            await _run(backend, _agent(ledger, ScriptedModel(_script())), mode)
        record = await backend.get_run(f"resume-{mode}")
        assert (record.status, record.owner) == ("failed", None)  # resumable: no lease held
        assert record.error_type is not None
        assert record.error_type.endswith("Stop")
        ledger.stop_at = None
        remaining = ScriptedModel(_script()[2:])  # only the unrecorded model call happens live
        with run_id(f"resume-{mode}"):
            result = await _run(backend, _agent(ledger, remaining), mode)
        assert result.final_output == "a, b and c looked up"
        assert remaining.remaining_steps == 0
        # a and b ran once; c was in flight at the "crash" and runs again (at least once).
        assert ledger.calls == ["lookup:a", "lookup:b", "lookup:c", "lookup:c"]
        events = await backend.engine.list_events(f"resume-{mode}")
        kinds = [e.type for e in events]
        assert kinds.count("model_call") == 3
        assert kinds.count("tool_call") == 3
        assert kinds[-1] == "run_completed"
        assert [e.seq for e in events] == list(range(1, len(events) + 1))

    run_async(go())


def test_replay_that_diverges_is_refused_and_names_the_step(backend: DurableBackend) -> None:
    ledger = Ledger()
    ledger.stop_at = "b"

    async def go() -> None:
        with run_id("diverge"), pytest.raises(Stop):
            await backend.run(_agent(ledger, ScriptedModel(_script())), "look up a, b, c")
        changed = _agent(ledger, ScriptedModel([]), instructions="Something else entirely.")
        with run_id("diverge"), pytest.raises(ReplayDivergenceError) as info:
            await backend.run(changed, "look up a, b, c")
        assert "diverged at model call #1" in str(info.value)
        assert "new run id" in str(info.value)

    run_async(go())


def test_reusing_an_id_with_another_input_is_refused(backend: DurableBackend) -> None:
    async def go() -> None:
        agent = Agent(name="echo", model=ScriptedModel([[assistant_message("one")]]))
        with run_id("same-id"):
            await backend.run(agent, "first question")
        with run_id("same-id"), pytest.raises(RunInputMismatchError, match="different input"):
            await backend.run(agent, "second question")

    run_async(go())


def test_each_unnamed_run_gets_a_fresh_readable_id(sqlite_backend: DurableBackend) -> None:
    def agent() -> Agent[Any]:
        return Agent(name="echo", model=ScriptedModel([[assistant_message("hi")]]))

    sqlite_backend.run_sync(agent(), "x")
    first = last_run_id()
    sqlite_backend.run_sync(agent(), "x")
    second = last_run_id()
    assert first
    assert second
    assert first != second
    assert run_async(sqlite_backend.get_run(second)).status == "completed"
    with run_id() as chosen:
        sqlite_backend.run_sync(agent(), "x")
    assert last_run_id() == chosen


def test_failed_run_records_the_error_and_resumes(sqlite_backend: DurableBackend) -> None:
    ledger = Ledger()
    flaky = ScriptedModel([_script()[0], ModelStep.raise_error(RuntimeError("upstream 503"))])
    with run_id("flaky"), pytest.raises(RuntimeError, match="upstream 503"):
        sqlite_backend.run_sync(_agent(ledger, flaky), "look up a, b, c")
    record = run_async(sqlite_backend.get_run("flaky"))
    assert (record.status, record.error_type) == ("failed", "builtins.RuntimeError")
    assert record.error == "upstream 503"
    with run_id("flaky"):
        result = sqlite_backend.run_sync(
            _agent(ledger, ScriptedModel(_script()[1:])), "look up a, b, c"
        )
    assert result.final_output == "a, b and c looked up"
    assert ledger.calls == ["lookup:a", "lookup:b", "lookup:c"]


def test_an_unstorable_tool_output_that_may_be_the_final_output_fails_clearly_and_keeps_the_journal(
    sqlite_backend: DurableBackend,
) -> None:
    """Any other tool's output is stored as the text the model sees (test_tool_outputs.py)."""

    class Opaque:
        pass

    @function_tool
    def fine() -> str:
        return "ok"

    @function_tool
    def opaque() -> Any:
        return Opaque()

    agent = Agent(
        name="mixed",
        tools=[fine, opaque],
        tool_use_behavior=StopAtTools(stop_at_tool_names=["opaque"]),
        output_type=Verdict,  # the final output is then the tool's output itself
        model=ScriptedModel(
            [
                [function_call("fine", {}, call_id="f1")],
                [function_call("opaque", {}, call_id="o1")],
                [assistant_message("never")],
            ]
        ),
    )
    with run_id("opaque"), pytest.raises(JournalSerializationError) as info:
        sqlite_backend.run_sync(agent, "go")
    message = str(info.value)
    assert "tool 'opaque'" in message
    assert f"result: {__name__}." in message  # the type named with its module
    assert "Opaque (its type" in message
    assert "pydantic model or a dataclass" in message
    assert "StopAtTools(['opaque']) and its output_type is" in message
    journal = run_async(sqlite_backend.engine.read_journal("opaque"))
    assert [(e.kind, e.key) for e in journal] == [("model", "0"), ("tool", "1:f1"), ("model", "1")]
    assert run_async(sqlite_backend.get_run("opaque")).status == "failed"


class Verdict(pydantic.BaseModel):
    approved: bool
    reason: str


@dataclasses.dataclass
class Receipt:
    amount: int
    items: tuple[str, ...]


def test_structured_outputs_handoffs_and_typed_tool_outputs_replay_exactly(
    backend: DurableBackend,
) -> None:
    @function_tool
    def receipt() -> Receipt:
        return Receipt(amount=3, items=("tea", "cake"))

    judge = Agent(
        name="judge",
        output_type=Verdict,
        tools=[receipt],
        model=ScriptedModel(
            [
                [function_call("receipt", {}, call_id="r1")],
                [assistant_message('{"approved": true, "reason": "under budget"}')],
            ]
        ),
    )
    triage = Agent(
        name="triage",
        handoffs=[judge],
        model=ScriptedModel([[function_call("transfer_to_judge", {}, call_id="h1")]]),
    )

    async def go() -> None:
        with run_id("typed"):
            first = await backend.run(triage, "approve?")
        assert first.final_output == Verdict(approved=True, reason="under budget")
        assert first.last_agent.name == "judge"
        outputs = [i.output for i in first.new_items if isinstance(i, ToolCallOutputItem)]
        assert Receipt(amount=3, items=("tea", "cake")) in outputs
        silent_judge = judge.clone(model=ScriptedModel([]))
        silent = triage.clone(model=ScriptedModel([]), handoffs=[silent_judge])
        with run_id("typed"):
            again = await backend.run(silent, "approve?")
        assert _summary(again) == _summary(first)
        assert again.last_agent.name == "judge"
        replayed = [i.output for i in again.new_items if isinstance(i, ToolCallOutputItem)]
        assert replayed == outputs
        assert isinstance(replayed[-1], Receipt)
        assert isinstance(replayed[-1].items, tuple)

    run_async(go())


def test_context_reaches_tools_and_instructions_live_and_on_resume(
    sqlite_backend: DurableBackend,
) -> None:
    seen: list[Any] = []

    def instructions(ctx: RunContextWrapper[Any], agent: Agent[Any]) -> str:
        seen.append(("instructions", ctx.context, agent.name))
        return "Be useful."

    @function_tool
    def whoami(ctx: RunContextWrapper[Any]) -> str:
        seen.append(("tool", ctx.context))
        return str(ctx.context["user"])

    context = {"user": "ada"}
    agent = Agent(
        name="ctx",
        instructions=instructions,
        tools=[whoami],
        model=ScriptedModel(
            [[function_call("whoami", {}, call_id="w1")], [assistant_message("ada")]]
        ),
    )
    result = sqlite_backend.run_sync(agent, "who?", context=context)
    assert result.final_output == "ada"
    assert ("tool", context) in seen
    assert all(entry[1] is context for entry in seen)


def test_cancelled_stream_is_recorded_as_cancelled(sqlite_backend: DurableBackend) -> None:
    release = asyncio.Event()

    @function_tool
    async def wait() -> str:
        await release.wait()
        return "never"

    agent = Agent(
        name="slow",
        tools=[wait],
        model=ScriptedModel([[function_call("wait", {}, call_id="w1")], [assistant_message("x")]]),
    )

    async def go() -> None:
        with run_id("cancel-me"):
            result = sqlite_backend.run_streamed(agent, "go")
        async for event in result.stream_events():
            if getattr(event, "name", None) == "tool_called":
                result.cancel()
        record = await sqlite_backend.get_run("cancel-me")
        assert record.status == "cancelled"
        with run_id("cancel-me"), pytest.raises(RunCancelledError, match="was cancelled"):
            await sqlite_backend.run(agent, "go")

    run_async(go())


def test_nested_agent_as_tool_runs_get_ids_derived_from_the_parent(
    sqlite_backend: DurableBackend,
) -> None:
    inner = Agent(name="inner", model=ScriptedModel([[assistant_message("inner answer")]]))
    outer = Agent(
        name="outer",
        tools=[inner.as_tool(tool_name="ask_inner", tool_description="Ask.")],
        model=ScriptedModel(
            [
                [function_call("ask_inner", {"input": "q"}, call_id="n1")],
                [assistant_message("done")],
            ]
        ),
    )
    name = runplane.register_plugin(_Plugin(sqlite_backend), name="durable-nested-test")
    try:
        with runplane.install("durable-nested"), run_id("parent"):
            import agents

            assert agents.Runner.run_sync(outer, "go").final_output == "done"
    finally:
        runplane.default_registry().unregister(name)
    child = run_async(sqlite_backend.get_run("parent/1:n1"))
    assert (child.agent_name, child.status) == ("inner", "completed")


class _Plugin:
    def __init__(self, backend: DurableBackend) -> None:
        self.backend = backend

    @runplane.hookimpl
    def runplane_backends(self) -> dict[str, Any]:
        return {"durable-nested": lambda: self.backend}


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201])
def test_run_id_rejects_unusable_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="non-empty string of at most 200"), run_id(bad):
        pass


def test_a_run_state_input_that_cannot_be_serialized_is_refused_clearly(
    sqlite_backend: DurableBackend,
) -> None:
    from agents import RunState

    class Unserializable(RunState[Any, Agent[Any]]):
        def to_json(self, **_: Any) -> dict[str, Any]:
            raise AttributeError("'SimpleNamespace' object has no attribute 'functions'")

    agent = Agent(name="a", model=ScriptedModel([]))
    state = Unserializable(
        context=RunContextWrapper(context=None),
        original_input="hi",
        starting_agent=agent,
        max_turns=3,
    )
    with pytest.raises(
        JournalSerializationError, match=r"cannot be serialized by RunState\.to_json"
    ):
        sqlite_backend.run_sync(agent, state)
