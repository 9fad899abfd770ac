"""`RunHandle.cancel()` through `Engine.cancel_run` (engineer C's, issue #11): these pass once
cancel_run is merged; until then the handle says the engine cannot cancel.

A queued run is held by no process, so cancelling it is final at once; a run a worker executes
stops there (the runtime sees the request) and is recorded `cancelled`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents import Agent
from agents.testing import ScriptedModel
from runplane_durable import DurableBackend, Runner
from runplane_durable.errors import RunCancelledError
from runplane_durable.runtime.handle import RunHandle
from support.durable import run_async
from support.workers import Jobs, wait_until


@pytest.fixture
def durable(backend: DurableBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[DurableBackend]:
    monkeypatch.setattr(Runner, "durable", classmethod(lambda cls: backend))
    yield backend
    run_async(backend.engine.dispose())


def test_cancelling_a_queued_run_is_final_at_once(durable: DurableBackend) -> None:
    async def go() -> None:
        agent = Agent(name="to-cancel", model=ScriptedModel([]))
        handle = await Runner.start(agent, "go")
        record = await handle.cancel()
        assert record.status == "cancelled"
        with pytest.raises(RunCancelledError):
            await handle.result()
        left = await durable.engine.claimable_runs(
            agent_refs=[], agent_names=["to-cancel"], queue="default", limit=10
        )
        assert left == []

    run_async(go())


@pytest.mark.slow
def test_cancelling_a_run_a_worker_executes_stops_it_there(sqlite_jobs: Jobs) -> None:
    from runplane_durable import LocalEngine

    jobs = sqlite_jobs
    (jobs.workdir / "hold").write_text("")
    (run_id,) = jobs.start("c1")
    worker = jobs.worker()
    wait_until(lambda: jobs.marker("holding"), "the worker holding in step_a")

    async def cancel() -> str:
        engine = LocalEngine(jobs.url)
        try:
            return (await RunHandle(run_id, engine).cancel()).status
        finally:
            await engine.dispose()

    run_async(cancel())
    wait_until(lambda: jobs.status(run_id) == "cancelled", "the run stopping in the worker")
    assert worker.poll() is None  # the worker goes on serving
    jobs.stop(worker)
