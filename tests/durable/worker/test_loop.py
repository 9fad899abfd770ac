"""The worker's loop in one process: it runs the queued runs it knows, and runs the remote tool
task server beside them through its hook (`worker/tool_tasks.py`'s `serve_tool_tasks`)."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, remote
from runplane_durable.records import RunSpec
from runplane_durable.worker.known import KnownAgents
from runplane_durable.worker.loop import Worker
from support.durable import run_async

from runplane import RunOptions


@function_tool
def stamp(n: int) -> str:
    """Stamp a job."""
    return f"stamped {n}"


@function_tool
def local_only(n: int) -> str:
    """Not remote: never served as tasks."""
    return str(n)


# `stamp` made remote on the loop tests' queues: registered when this module is imported, as
# a program's remote tools are when a worker imports its modules.
REMOTE_STAMPS = {queue: remote(stamp, queue=queue) for queue in ("loop", "tt")}


def _serve_with(monkeypatch: pytest.MonkeyPatch, serve: Any) -> None:
    """`serve` in place of `worker/tool_tasks.py`'s `serve_tool_tasks` (the loop's hook)."""
    monkeypatch.setattr("runplane_durable.worker.loop.serve_tool_tasks", serve)


def _known(agent: Agent[Any]) -> KnownAgents:
    module = types.ModuleType("loop_jobs")
    module.agent = agent  # type: ignore[attr-defined]
    module.stamp = stamp  # type: ignore[attr-defined]
    module.local_only = local_only  # type: ignore[attr-defined]
    return KnownAgents(by_ref={}, by_name={agent.name: agent}, modules=[module])


def test_the_loop_runs_queued_runs_and_the_tool_task_hook_beside_them(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[Any, list[Any], str]] = []

    async def serve_tool_tasks(
        engine: Any, tools: list[Any], *, queue: str, stop: asyncio.Event
    ) -> None:
        served.append((engine, tools, queue))
        await stop.wait()

    _serve_with(monkeypatch, serve_tool_tasks)
    script = [[function_call("stamp", {"n": 3}, call_id="c1")], [assistant_message("ok")]]
    agent = Agent(name=f"looper-{id(served)}", model=ScriptedModel(script), tools=[stamp])

    async def go() -> None:
        record = await backend.start(agent, "go", RunOptions(), queue="loop")
        worker = Worker(backend.engine, _known(agent), queue="loop", poll=0.05)
        stop = asyncio.Event()
        running = asyncio.ensure_future(worker.run(stop))
        for _ in range(200):
            if (await backend.engine.get_run(record.id)).status == "completed":
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(running, 10)
        assert (await backend.engine.get_run(record.id)).status == "completed"
        ((engine, tools, queue),) = served
        assert (engine, queue) == (backend.engine, "loop")
        # The remote tools on the worker's queue, by name; never another queue's, never a
        # local tool.
        assert tools == {"stamp": REMOTE_STAMPS["loop"]}
        await backend.engine.dispose()

    run_async(go())


def test_a_worker_needs_a_slot_and_a_poll(backend: DurableBackend) -> None:
    known = KnownAgents()
    with pytest.raises(ValueError, match="concurrency must be at least 1, got 0"):
        Worker(backend.engine, known, concurrency=0)
    with pytest.raises(ValueError, match="poll must be positive"):
        Worker(backend.engine, known, poll=0)


def test_a_run_it_cannot_rebuild_is_tried_once_and_left_queued(
    backend: DurableBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored context whose class this worker never imported: the run cannot start here, and
    the worker says so once instead of at every look."""
    agent = Agent(name=f"rebuilder-{id(caplog)}", model=ScriptedModel([]))

    async def go() -> None:
        record = await backend.start(agent, "go", RunOptions(), queue="rebuild")
        stored = {"type": "module_nobody_imported:Ctx", "data": {}}
        spec = RunSpec(
            f"{record.id}-ctx",
            agent.name,
            record.input,
            record.input_fingerprint,
            {**record.options, "context": stored},
            queue="rebuild",
        )
        broken = await backend.engine.enqueue_run(spec)
        await backend.engine.get_run(record.id)
        worker = Worker(backend.engine, _known(agent), queue="rebuild", poll=0.02)
        stop = asyncio.Event()
        running = asyncio.ensure_future(worker.run(stop))
        await asyncio.sleep(0.5)  # many looks
        stop.set()
        await asyncio.wait_for(running, 10)
        assert (await backend.engine.get_run(broken.id)).status == "queued"
        failures = [
            r for r in caplog.records if r.levelname == "ERROR" and broken.id in r.getMessage()
        ]
        assert len(failures) == 1
        assert "module 'module_nobody_imported' is not imported" in failures[0].getMessage()
        await backend.engine.dispose()

    with caplog.at_level("INFO", logger="runplane_durable.worker"):
        run_async(go())


def test_a_failing_tool_task_server_stops_the_worker_with_its_error(
    backend: DurableBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def serve_tool_tasks(engine: Any, tools: Any, *, queue: str, stop: Any) -> None:
        raise RuntimeError("tool task table unreadable")

    _serve_with(monkeypatch, serve_tool_tasks)
    agent = Agent(name="with-tools", model=ScriptedModel([]), tools=[stamp])

    async def go() -> None:
        worker = Worker(backend.engine, _known(agent), queue="tt", poll=0.02)
        with pytest.raises(RuntimeError, match="tool task table unreadable"):
            await asyncio.wait_for(worker.run(asyncio.Event()), 10)
        await backend.engine.dispose()

    run_async(go())
