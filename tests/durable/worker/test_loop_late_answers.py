"""The worker's loop when the answers it acts on come late (a worker cut off from its server,
as tests/durable/worker/test_partition.py does for real): a list of claimable runs read before
one of the worker's own executions ended must not make it open that run again."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import types
from collections.abc import Sequence
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend
from runplane_durable.errors import RunLeasedError
from runplane_durable.owner import owner_is_dead
from runplane_durable.records import RunRecord, RunSpec, choose_claimable
from runplane_durable.runtime.runner import resume_run
from runplane_durable.worker.known import KnownAgents
from runplane_durable.worker.loop import Worker
from support.durable import run_async

from runplane import RunOptions

RELEASE: asyncio.Event | None = None  # the tool returns once it is set


@function_tool
async def step() -> str:
    """One step, which waits for the test."""
    assert RELEASE is not None
    await RELEASE.wait()
    return "stepped"


class LateAnswers:
    """An engine whose answer to `claimable_runs` is read at once but, once, arrives only when
    `deliver` is set, as over a link that dropped it and brought it back later: the candidates
    are chosen (`records.choose_claimable`, what a `RemoteEngine` does with its server's answer)
    when it arrives. Everything else goes to `inner`."""

    def __init__(self, inner: Any, run_id: str) -> None:
        self.inner = inner
        self.run_id = run_id
        self.deliver = asyncio.Event()
        self.held = asyncio.Event()  # an answer showing the run held here is on its way
        self.opened: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def open_run(self, spec: RunSpec, *, lease_seconds: float) -> Any:
        self.opened.append(spec.run_id)
        return await self.inner.open_run(spec, lease_seconds=lease_seconds)

    async def claimable_runs(
        self, *, agent_refs: Sequence[str], agent_names: Sequence[str], queue: str, limit: int
    ) -> list[RunRecord]:
        free, held = await self.inner.claim_candidates(
            agent_refs=agent_refs,
            agent_names=agent_names,
            queue=queue,
            limit=limit,
            host=socket.gethostname(),
        )
        if not self.held.is_set() and any(r.id == self.run_id for r in held):
            self.held.set()
            await self.deliver.wait()
        return choose_claimable(free, held, limit=limit, is_dead=owner_is_dead)


def _known(agent: Agent[Any]) -> KnownAgents:
    module = types.ModuleType("late_jobs")
    module.agent = agent  # type: ignore[attr-defined]
    return KnownAgents(by_ref={}, by_name={agent.name: agent}, modules=[module])


def test_a_late_list_of_claimable_runs_never_reopens_a_run_this_worker_just_ran(
    backend: DurableBackend,
) -> None:
    """The list was read while the worker ran the run under a live lease; by the time it
    arrives, the worker's execution has ended (finished here; or, cut off, refused as taken
    over), so its lease holder is one of this process's ended ones, which counts as dead: the
    run looks orphaned, and the worker would open it again (replaying a finished run, or taking
    a failed one up again) on a picture older than its own end."""
    global RELEASE
    script = [[function_call("step", {}, call_id="c1")], [assistant_message("done")]]
    agent = Agent(name=f"late-{id(backend)}", model=ScriptedModel(script), tools=[step])

    async def go() -> None:
        global RELEASE
        RELEASE = asyncio.Event()
        record = await backend.start(agent, "go", RunOptions(), queue="late")
        engine = LateAnswers(backend.engine, record.id)
        worker = Worker(engine, _known(agent), queue="late", poll=0.02)  # type: ignore[arg-type]
        stop = asyncio.Event()
        running = asyncio.ensure_future(worker.run(stop))
        await asyncio.wait_for(engine.held.wait(), 10)  # read while the run executes here
        RELEASE.set()
        for _ in range(500):
            if (await backend.engine.get_run(record.id)).status == "completed":
                break
            await asyncio.sleep(0.01)
        assert (await backend.engine.get_run(record.id)).status == "completed"
        engine.deliver.set()  # the old answer arrives now, after the run's end here
        await asyncio.sleep(0.3)  # many more looks
        stop.set()
        await asyncio.wait_for(running, 10)
        assert engine.opened == [record.id]  # opened once: the late list was not acted on
        await backend.engine.dispose()

    try:
        run_async(go())
    finally:
        RELEASE = None


def test_a_listed_run_another_process_finished_since_is_not_taken_up_again(
    backend: DurableBackend,
) -> None:
    """Two workers list the same queued run; one runs it (here: it fails, its model has
    nothing to say) before the other's claim arrives. That claim, of the run as listed, is
    refused (RunLeasedError with the run's status now): the failed run is not run again, and
    a completed one is not replayed (its hooks would run again)."""

    async def go() -> None:
        failing = Agent(name=f"fails-{id(backend)}", model=ScriptedModel([]))
        listed = await backend.start(failing, "go", RunOptions(), queue="late")
        with contextlib.suppress(Exception):
            await resume_run(backend, listed, failing, claim=True)  # the first worker's claim
        assert (await backend.engine.get_run(listed.id)).status == "failed"
        events = len(await backend.engine.list_events(listed.id))
        with pytest.raises(RunLeasedError) as refused:
            await resume_run(backend, listed, failing, claim=True)  # the second, on its list
        assert (refused.value.status, refused.value.taken_over) == ("failed", False)
        assert "failed now" in str(refused.value)
        assert len(await backend.engine.list_events(listed.id)) == events  # no new attempt
        assert (await backend.engine.get_run(listed.id)).status == "failed"

        model = ScriptedModel([[assistant_message("done")]])
        done_agent = Agent(name=f"done-{id(backend)}", model=model)
        listed = await backend.start(done_agent, "go", RunOptions(), queue="late")
        await resume_run(backend, listed, done_agent, claim=True)
        with pytest.raises(RunLeasedError) as refused:
            await resume_run(backend, listed, done_agent, claim=True)
        assert refused.value.status == "completed"
        assert len(model.calls) == 1
        # Not a claim (a program asking for its run's result): a completed run replays.
        again = await resume_run(backend, listed, done_agent)
        assert again.final_output == "done"
        await backend.engine.dispose()

    run_async(go())
