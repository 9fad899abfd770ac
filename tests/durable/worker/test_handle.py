"""`Runner.start` and `RunHandle` in one process: a queued run, its outcome, its context, and
its stream events rebuilt from the event log, compared with what the SDK's own `run_streamed`
gives for the same run. (Workers in their own processes: test_worker.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import agents
import pytest
from agents import Agent, RunContextWrapper, function_tool
from agents.stream_events import AgentUpdatedStreamEvent, RunItemStreamEvent
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, LocalEngine, Runner
from runplane_durable.errors import (
    AgentRefError,
    JournalSerializationError,
    RunFailedError,
    RunInputMismatchError,
    RunNotFoundError,
)
from runplane_durable.runtime.handle import RunHandle
from runplane_durable.runtime.runner import resume_run
from support.durable import run_async


@pytest.fixture
def durable(backend: DurableBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[DurableBackend]:
    """`Runner`'s durable backend is this test's (on SQLite, then on PostgreSQL)."""
    monkeypatch.setattr(Runner, "durable", classmethod(lambda cls: backend))
    yield backend
    run_async(backend.engine.dispose())


@dataclasses.dataclass
class Order:
    number: int
    rush: bool = False


def _agent(script: list[Any], *, name: str = "clerk", **kw: Any) -> Agent[Any]:
    @function_tool
    def look_up(wrapper: RunContextWrapper[Any], n: int) -> str:
        """Look the order up."""
        context = wrapper.context
        return f"order {n}" + (f" (context {context.number})" if isinstance(context, Order) else "")

    return Agent(name=name, model=ScriptedModel(script), tools=[look_up], **kw)


SCRIPT = [
    [function_call("look_up", {"n": 7}, call_id="c1")],
    [assistant_message("found it")],
]


def test_a_started_run_waits_queued_then_its_handle_gives_its_outcome(
    durable: DurableBackend,
) -> None:
    async def go() -> None:
        agent = _agent(list(SCRIPT))
        handle = await Runner.start(agent, "find order 7", context=Order(7), max_turns=5)
        assert handle.run_id.startswith("run_")
        assert await handle.status() == "queued"
        record = await handle.get_run()
        assert (record.queue, record.agent_ref, record.options["max_turns"]) == ("default", None, 5)
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 s \(it is queued\)"):
            await handle.result(timeout=0.2, poll=0.05)
        waiting = asyncio.ensure_future(handle.result(poll=0.05))
        result = await resume_run(durable, record, agent)  # what a worker does
        assert await waiting == "found it" == result.final_output
        assert await handle.status() == "completed"
        events = await durable.engine.list_events(handle.run_id)
        tool = next(e for e in events if e.type == "tool_call")
        assert tool.payload["output"] == {"json": "order 7 (context 7)"}  # the stored context
        # Started again under its id: the same run, once; another input is another run.
        again = await Runner.start(agent, "find order 7", run_id=handle.run_id)
        assert (await again.get_run()).status == "completed"
        with pytest.raises(RunInputMismatchError):
            await Runner.start(agent, "find order 8", run_id=handle.run_id)

    run_async(go())


def test_a_failed_run_raises_its_stored_error_from_the_handle(durable: DurableBackend) -> None:
    async def go() -> None:
        agent = _agent([RuntimeError("model down")])
        handle = await Runner.start(agent, "go")
        with pytest.raises(RuntimeError, match="model down"):
            await resume_run(durable, await handle.get_run(), agent)
        with pytest.raises(RunFailedError) as info:
            await handle.result()
        assert (info.value.error_type, info.value.error) == ("builtins.RuntimeError", "model down")
        assert info.value.run_id == handle.run_id
        assert str(info.value).startswith(f"run {handle.run_id!r} failed: RuntimeError: model down")

    run_async(go())


def test_start_refuses_a_context_it_cannot_store_and_a_bad_reference(
    durable: DurableBackend,
) -> None:
    async def go() -> None:
        with pytest.raises(
            JournalSerializationError, match=r"context for the worker .* cannot be stored"
        ) as info:
            await Runner.start(_agent([]), "go", run_id="ctx-1", context={"lock": object()})
        assert info.value.path == 'result["lock"]'
        with pytest.raises(RunNotFoundError):  # nothing stored
            await durable.engine.get_run("ctx-1")
        with pytest.raises(AgentRefError, match="no module named 'no_such_pkg'"):
            await Runner.start("no_such_pkg.agents:triage", "go")
        with pytest.raises(AgentRefError, match="not an import reference"):
            await Runner.start("app:a:b", "go")
        with pytest.raises(AgentRefError, match="names a module, not one agent"):
            await Runner.start("triage", "go")
        with pytest.raises(AgentRefError, match=r"'dumps' is a function, not an agents\.Agent"):
            await Runner.start("json:dumps", "go")

    run_async(go())


def _shape(event: Any) -> tuple[Any, ...]:
    """What a stream consumer looks at: the event type, its name and item type, the agent, and
    the item's raw call id / text."""
    if isinstance(event, AgentUpdatedStreamEvent):
        return ("agent_updated", event.new_agent.name)
    assert isinstance(event, RunItemStreamEvent)
    item = event.item
    raw = item.raw_item
    detail = raw.get("call_id") if isinstance(raw, dict) else getattr(raw, "call_id", None)
    extra: Any = getattr(item, "output", None)
    if event.name == "message_output_created":
        extra = agents.ItemHelpers.text_message_output(item)  # type: ignore[arg-type]
    if event.name == "handoff_occured":
        extra = (item.source_agent.name, item.target_agent.name)  # type: ignore[attr-defined]
    return (event.name, type(item).__name__, item.agent.name, detail, extra)


def test_stream_events_are_the_sdks_own_for_the_same_run(durable: DurableBackend) -> None:
    """A watcher gets the events `run_streamed` gives its caller (raw ones aside), from the log."""
    script = [
        [
            function_call("look_up", {"n": 1}, call_id="c1"),
            function_call("look_up", {"n": 2}, call_id="c2"),
        ],
        [function_call("transfer_to_billing", {}, call_id="h1")],
        [assistant_message("billed")],
    ]

    def agents_for(model: ScriptedModel) -> Agent[Any]:
        billing = Agent(name="billing", model=model)
        return _agent([], name="front", handoffs=[billing]).clone(model=model)

    async def sdk_events() -> list[tuple[Any, ...]]:
        streamed = agents.Runner.run_streamed(agents_for(ScriptedModel(list(script))), "go")
        return [_shape(e) async for e in streamed.stream_events() if e.type != "raw_response_event"]

    async def go() -> None:
        expected = await sdk_events()
        agent = agents_for(ScriptedModel(list(script)))
        handle = await Runner.start(agent, "go")
        watched: list[tuple[Any, ...]] = []

        async def watch() -> None:
            async for event in handle.stream_events(poll=0.02):
                watched.append(_shape(event))

        watcher = asyncio.ensure_future(watch())  # watching from before the run starts
        await resume_run(durable, await handle.get_run(), agent)
        await asyncio.wait_for(watcher, 10)
        assert watched == expected
        names = [s[0] for s in expected]
        assert "handoff_occured" in names
        assert names.count("tool_output") == 2
        # Another watcher, later, with only the run's id (no agent code): the same events.
        late = RunHandle(handle.run_id, durable.engine)
        assert [_shape(e) async for e in late.stream_events()] == expected

    run_async(go())


def test_a_handle_reads_a_run_started_in_another_engine_client(db_url: str) -> None:
    async def go() -> None:
        starter = DurableBackend(LocalEngine(db_url))
        watcher = LocalEngine(db_url, read_only=True)
        try:
            agent = _agent(list(SCRIPT))
            record = await starter.start(agent, [{"role": "user", "content": "go"}], _options())
            handle = RunHandle(record.id, watcher)
            assert await handle.status() == "queued"
            await resume_run(starter, record, agent)
            assert await handle.result() == "found it"
        finally:
            await starter.engine.dispose()
            await watcher.dispose()

    run_async(go())


def _options() -> Any:
    from runplane import RunOptions

    return RunOptions()
