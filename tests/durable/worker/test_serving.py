"""serve_tool_tasks and a durable run on one event loop: what a remote tool's failure looks like
to the model and the run, attempt timeouts, contexts that cannot be sent or rebuilt, stopping a
worker, and the tool arguments and contexts a worker receives (hypothesis). The kills and pauses
of real worker processes are in test_tool_tasks.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pydantic
import pytest
from agents import Agent, FunctionTool, function_tool
from agents.exceptions import UserError
from agents.testing import ScriptedModel, assistant_message, function_call
from agents.tool_context import ToolContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runplane_durable import (
    DurableBackend,
    LocalEngine,
    RemoteContextError,
    RemoteToolError,
    RunLeasedError,
    remote,
    run_id,
)
from runplane_durable.engine import open_engine
from runplane_durable.events import ToolCalled, parse
from runplane_durable.owner import current_owner
from runplane_durable.records import TaskSpec
from runplane_durable.serde import dump_value, load_value
from runplane_durable.worker.tool_tasks import serve_tool_tasks

Run = Callable[[], Awaitable[None]]


def go(test: Run) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


def queue_name() -> str:
    return f"serving-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def serving(url: str, *tools: FunctionTool, queue: str) -> AsyncIterator[asyncio.Event]:
    """A worker on this loop, with its own engine (another client of the database)."""
    stop = asyncio.Event()
    engine = open_engine(url)
    worker = asyncio.ensure_future(
        serve_tool_tasks(engine, {t.name: t for t in tools}, queue=queue, stop=stop)
    )
    try:
        yield stop
    finally:
        stop.set()
        await worker
        await engine.dispose()


async def run_agent(
    url: str, tool: FunctionTool, context: Any = None, rid: str | None = None
) -> tuple[str, Any, str]:
    """Run an agent that calls `tool` once, then answers with its output; (rid, result, output
    the model was shown)."""
    model = ScriptedModel(
        [[function_call(tool.name, {"city": "Oslo"}, call_id="c1")], [assistant_message("ok")]]
    )
    backend = DurableBackend(open_engine(url))
    rid = rid or f"serving-{uuid.uuid4().hex[:10]}"
    try:
        with run_id(rid):
            result = await backend.run(
                Agent(name="a", model=model, tools=[tool]), "go", context=context
            )
    finally:
        await backend.engine.dispose()
    shown = [getattr(i, "output", None) for i in result.new_items if hasattr(i, "output")]
    return rid, result, shown[0]


async def tool_event(url: str, rid: str) -> ToolCalled:
    engine = open_engine(url)
    try:
        [event] = [
            e for e in map(parse, await engine.list_events(rid)) if isinstance(e, ToolCalled)
        ]
    finally:
        await engine.dispose()
    return event


def failing(queue: str, **kwargs: Any) -> tuple[FunctionTool, FunctionTool]:
    """The same raising tool, local and remote."""

    def no_city(city: str) -> str:
        """Fails."""
        raise LookupError(f"no such city: {city}")

    local = function_tool(no_city, **kwargs)
    return local, remote(local, queue=queue)


@pytest.mark.parametrize("formatter", ["default", "custom"])
def test_a_remote_tool_that_raises_shows_the_model_what_a_local_one_does(
    store_url: str, formatter: str
) -> None:
    kwargs: dict[str, Any] = {}
    if formatter == "custom":
        kwargs["failure_error_function"] = lambda ctx, error: f"failed: {error}"

    async def test() -> None:
        queue = queue_name()
        local, far = failing(queue, **kwargs)
        _, _, shown_locally = await run_agent(store_url, local)
        async with serving(store_url, far, queue=queue):
            rid, _, shown = await run_agent(store_url, far)
        assert shown == shown_locally
        if formatter == "custom":
            assert shown == "failed: no such city: Oslo"
        event = await tool_event(store_url, rid)
        assert event.error is not None
        assert (event.error.type, event.error.message) == ("LookupError", "no such city: Oslo")
        engine = open_engine(store_url)
        [task] = await engine.list_tasks(rid)
        await engine.dispose()
        assert (task.status, task.attempts) == ("completed", 1)  # a result, not retried
        assert task.result is not None
        assert (task.result.kind, task.result.error_type) == ("error", "LookupError")

    go(test)


def test_a_remote_tool_without_failure_handling_fails_the_run_as_a_local_one_does(
    store_url: str,
) -> None:
    async def test() -> None:
        queue = queue_name()
        local, far = failing(queue, failure_error_function=None)
        with pytest.raises(UserError) as here:
            await run_agent(store_url, local)
        async with serving(store_url, far, queue=queue):
            with pytest.raises(UserError) as there:
                await run_agent(store_url, far)
        assert (
            str(there.value) == str(here.value) == "Error running tool no_city: no such city: Oslo"
        )
        cause = there.value.__cause__
        assert isinstance(cause, RemoteToolError)
        assert (str(cause), cause.raised_type) == ("no such city: Oslo", "LookupError")

    go(test)


def test_an_attempt_over_its_timeout_is_retried_then_the_task_fails(store_url: str) -> None:
    runs: list[str] = []

    async def hangs(city: str) -> str:
        """Never answers in time."""
        runs.append(city)
        await asyncio.sleep(30)
        return city

    async def test() -> None:
        queue = queue_name()
        tool = remote(function_tool(hangs), queue=queue, timeout=0.2, max_attempts=2, retry_delay=0)
        async with serving(store_url, tool, queue=queue):
            rid, _, shown = await run_agent(store_url, tool)
        assert shown == "An error occurred while running the tool. Please try again."
        event = await tool_event(store_url, rid)
        assert event.error is not None
        assert event.error.message.endswith(
            "failed after 2 attempt(s) (at most 2); the last one: attempt 2: it ran longer than "
            "its timeout of 0.2 s"
        )
        assert runs == ["Oslo", "Oslo"]

    go(test)


@dataclasses.dataclass
class Holder:
    name: str
    lock: Any


def test_a_context_that_cannot_be_sent_fails_the_run_before_anything_is_enqueued(
    store_url: str,
) -> None:
    seen: list[Any] = []

    def uses_nothing(ctx: ToolContext[Any], city: str) -> str:
        """Needs no context."""
        seen.append(ctx.context)
        return city

    async def test() -> None:
        queue = queue_name()
        context = Holder("ann", threading.Lock())
        tool = remote(function_tool(uses_nothing), queue=queue)
        rid = f"serving-{uuid.uuid4().hex[:10]}"
        with pytest.raises(RemoteContextError) as info:
            await run_agent(store_url, tool, context, rid)
        error = info.value
        assert (error.tool, error.context_type) == ("uses_nothing", f"{__name__}.Holder")
        assert "cannot be sent" in str(error)
        assert "remote(..., send_context=False)" in str(error)
        engine = open_engine(store_url)
        assert (await engine.get_run(rid)).status == "failed"
        assert await engine.list_tasks(rid) == []  # nothing was enqueued
        await engine.dispose()
        # Sent without its context, the same tool runs.
        quiet = remote(function_tool(uses_nothing), queue=queue, send_context=False)
        async with serving(store_url, quiet, queue=queue):
            _, _, shown = await run_agent(store_url, quiet, context)
        assert (shown, seen) == ("Oslo", [None])

    go(test)


def test_a_context_the_worker_cannot_rebuild_ends_the_attempt_saying_why(store_url: str) -> None:
    def anything(city: str) -> str:
        """Never runs here."""
        raise AssertionError("ran without its context")

    async def test() -> None:
        queue = queue_name()
        engine = open_engine(store_url)
        task = await engine.enqueue_task(
            TaskSpec(
                run_id=f"serving-{uuid.uuid4().hex[:8]}",
                call_key="1:c1",
                queue=queue,
                tool_name="anything",
                call_id="c1",
                arguments='{"city": "Oslo"}',
                context={"type": "never_imported_module:Deps", "data": {}},
                max_attempts=1,
            )
        )
        async with serving(store_url, function_tool(anything), queue=queue):
            for _ in range(500):
                task = await engine.get_task(task.id)
                if task.status == "failed":
                    break
                await asyncio.sleep(0.01)
        await engine.dispose()
        assert task.status == "failed"
        assert task.error is not None
        assert task.error.startswith("attempt 1: this worker could not rebuild the run's context")
        assert "module 'never_imported_module' is not imported" in task.error

    go(test)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_outputs_cross_as_the_journal_stores_them(store_url: str) -> None:
    """A value the journal cannot store arrives as the text the model sees; one the SDK cannot
    make an output of fails the call, as the SDK fails a local one."""

    def when(city: str) -> datetime.date:
        """A date."""
        return datetime.date(2026, 12, 1)

    def broken(city: str) -> Any:
        """An output with no text."""
        return Unprintable()

    async def test() -> None:
        queue = queue_name()
        dated, bad = (
            remote(function_tool(when), queue=queue),
            remote(function_tool(broken), queue=queue),
        )
        async with serving(store_url, dated, bad, queue=queue):
            _, _, shown = await run_agent(store_url, dated)
            rid, _, shown_bad = await run_agent(store_url, bad)
        assert shown == "2026-12-01"
        assert shown_bad == "An error occurred while running the tool. Please try again."
        event = await tool_event(store_url, rid)
        assert event.error is not None
        assert event.error.message == (
            f"tool 'broken' returned a {__name__}.Unprintable, which the SDK cannot make a tool "
            "output of"
        )

    go(test)


def test_a_stopped_worker_finishes_its_attempts_and_a_cancelled_one_gives_them_back(
    store_url: str,
) -> None:
    async def test() -> None:
        queue = queue_name()
        gate = asyncio.Event()

        async def waits(city: str) -> str:
            """Waits for the test."""
            await gate.wait()
            return city

        tool = remote(function_tool(waits), queue=queue, retry_delay=0)
        engine = open_engine(store_url)

        async def enqueue(key: str) -> str:
            spec = TaskSpec(
                f"serving-{uuid.uuid4().hex[:8]}", key, queue, "waits", "c", '{"city":"x"}'
            )
            return (await engine.enqueue_task(spec)).id

        async def status(task_id: str) -> str:
            return (await engine.get_task(task_id)).status

        first = await enqueue("1:a")
        stop = asyncio.Event()
        worker = asyncio.ensure_future(
            serve_tool_tasks(engine, {"waits": tool}, queue=queue, stop=stop)
        )
        while await status(first) != "running":  # noqa: ASYNC110 - the database is polled
            await asyncio.sleep(0.01)
        stop.set()  # stop claiming; the attempt under way goes on
        await asyncio.sleep(0.1)
        assert not worker.done()
        gate.set()
        await asyncio.wait_for(worker, 10)
        assert await status(first) == "completed"
        gate.clear()
        second = await enqueue("1:b")
        stop = asyncio.Event()
        worker = asyncio.ensure_future(
            serve_tool_tasks(engine, {"waits": tool}, queue=queue, stop=stop)
        )
        while await status(second) != "running":  # noqa: ASYNC110 - the database is polled
            await asyncio.sleep(0.01)
        worker.cancel()  # a hard stop: the attempt is ended and its task retried
        with pytest.raises(asyncio.CancelledError):
            await worker
        task = await engine.get_task(second)
        assert (task.status, task.error) == ("pending", "attempt 1: the worker stopped during it")
        await engine.dispose()

    go(test)


def test_a_worker_is_refused_tools_it_cannot_serve(tmp_path: Any) -> None:
    engine = LocalEngine(f"sqlite:///{tmp_path / 'w.db'}")
    stop = asyncio.Event()
    tool = function_tool(lambda city: city, name_override="echo")

    async def serve(tools: Any, **kwargs: Any) -> None:
        await serve_tool_tasks(engine, tools, queue="q", stop=stop, **kwargs)

    for tools, kwargs, error, says in [
        ({}, {}, ValueError, "at least one tool"),
        ({"other": tool}, {}, ValueError, "tool 'echo' is given under another name, 'other'"),
        ({"echo": "echo"}, {}, TypeError, "tool 'echo' is a str, not a FunctionTool"),
        ({"echo": tool}, {"concurrency": 0}, ValueError, "concurrency must be at least 1"),
        ({"echo": tool}, {"lease_seconds": 0}, ValueError, "lease_seconds must be positive"),
    ]:
        with pytest.raises(error, match=says):
            asyncio.run(serve(tools, **kwargs))


class Prefs(pydantic.BaseModel):
    units: str
    tags: list[str]


@dataclasses.dataclass
class Deps:
    user: str
    prefs: Prefs
    limits: dict[str, float]


text = st.text(st.characters(exclude_categories=()), max_size=20)
json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)
contexts = json_data | st.builds(
    Deps,
    user=text,
    prefs=st.builds(Prefs, units=text, tags=st.lists(text, max_size=3)),
    # pydantic does not keep a lone surrogate in a dict key: such a context is refused
    # (RemoteContextError), as such a tool output is.
    limits=st.dictionaries(
        st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
        st.floats(allow_nan=False, allow_infinity=False),
        max_size=3,
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(arguments=text, context=contexts)
def test_a_worker_gets_the_calls_arguments_and_context_as_the_run_had_them(
    store_url: str, arguments: str, context: Any
) -> None:
    async def test() -> None:
        engine = open_engine(store_url)
        queue = queue_name()
        spec = TaskSpec(
            f"payload-{uuid.uuid4().hex[:8]}",
            "1:c1",
            queue,
            "lookup",
            "c1",
            arguments,
            dump_value(context, what="the run's context", path="context"),
        )
        await engine.enqueue_task(spec)
        task = await engine.claim_task(
            queue=queue, tools=["lookup"], owner=current_owner(), lease_seconds=30
        )
        await engine.dispose()
        assert task is not None
        assert task.arguments == arguments
        rebuilt = load_value(task.context)
        assert rebuilt == context
        assert type(rebuilt) is type(context)

    asyncio.run(test())


def test_a_worker_runs_up_to_its_concurrency_and_keeps_long_attempts_leased(store_url: str) -> None:
    async def test() -> None:
        queue = queue_name()
        live: list[int] = []
        peak: list[int] = []

        async def long_call(city: str) -> str:
            """Takes longer than the worker's lease."""
            live.append(1)
            peak.append(len(live))
            await asyncio.sleep(1.0)
            live.pop()
            return city

        tool = remote(function_tool(long_call), queue=queue)
        engine = open_engine(store_url)
        ids = []
        for n in range(3):
            rid = f"serving-{uuid.uuid4().hex[:8]}"
            spec = TaskSpec(rid, f"1:c{n}", queue, "long_call", "c", '{"city": "x"}')
            ids.append((await engine.enqueue_task(spec)).id)
        stop = asyncio.Event()
        worker = asyncio.ensure_future(
            serve_tool_tasks(
                engine,
                {"long_call": tool},
                queue=queue,
                stop=stop,
                concurrency=2,
                lease_seconds=0.3,
            )
        )
        done: list[Any] = []
        while len(done) < 3:
            await asyncio.sleep(0.05)
            done = [t for t in [await engine.get_task(i) for i in ids] if t.status == "completed"]
        stop.set()
        await worker
        await engine.dispose()
        assert max(peak) == 2  # two at once, the third after
        # Each ran once, in one attempt: its heartbeat renewed a lease shorter than the call.
        assert [t.attempts for t in done] == [1, 1, 1]

    go(test)


def test_a_streamed_run_calls_a_remote_tool_as_a_run_does(store_url: str) -> None:
    def weather(city: str) -> str:
        """Weather for a city."""
        return f"{city}: sunny"

    async def test() -> None:
        queue = queue_name()
        tool = remote(function_tool(weather), queue=queue)
        model = ScriptedModel(
            [[function_call("weather", {"city": "Oslo"}, call_id="c1")], [assistant_message("ok")]]
        )
        backend = DurableBackend(open_engine(store_url))
        async with serving(store_url, tool, queue=queue):
            result = backend.run_streamed(Agent(name="s", model=model, tools=[tool]), "go")
            outputs = [
                e.item.output
                async for e in result.stream_events()
                if e.type == "run_item_stream_event" and e.name == "tool_output"
            ]
        await backend.engine.dispose()
        assert (outputs, result.final_output) == (["Oslo: sunny"], "ok")

    go(test)


def test_a_run_that_loses_its_lease_while_it_waits_stops_waiting(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    def weather(city: str) -> str:
        """Never served here."""
        return city

    async def test() -> None:
        queue = queue_name()
        tool = remote(function_tool(weather), queue=queue)
        backend = DurableBackend(open_engine(url), lease_seconds=0.4)
        rid = f"serving-{uuid.uuid4().hex[:8]}"
        model = ScriptedModel([[function_call("weather", {"city": "Oslo"}, call_id="c1")]])

        async def run() -> None:
            with run_id(rid):
                await backend.run(Agent(name="w", model=model, tools=[tool]), "go")

        running = asyncio.ensure_future(run())
        while not await backend.engine.list_tasks(rid):  # noqa: ASYNC110 - the database is polled
            await asyncio.sleep(0.01)
        with sqlite3.connect(tmp_path / "runs.db") as db:  # another process took the run over
            db.execute(
                "UPDATE runplane_runs SET owner = 'thief', lease_expires_at = ? WHERE id = ?",
                (time.time() + 60, rid),
            )
        with pytest.raises(RunLeasedError, match="was taken over by another process"):
            await asyncio.wait_for(running, 10)
        [task] = await backend.engine.list_tasks(rid)
        assert task.status == "pending"  # still the call's, for the run's next holder
        await backend.engine.dispose()

    go(test)
