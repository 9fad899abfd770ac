"""The worker's loop: claim the runs of its queue whose agent it knows, run them, stop cleanly.

Each pass asks the engine for runs it may claim now (`Engine.claimable_runs`: runs whose
process died or stopped, then queued ones) and starts each, up to `concurrency` at once, with
its stored input, options and context, under its own id (`runtime.runner.resume_run`). The
claim is `Engine.open_run`'s lease: of several workers trying one run, one executes it and the
others get RunLeasedError and move on, so no run executes twice at once. Stopping cancels the
runs in progress: each gives its lease back (its attempt ends `interrupted`), so another worker
takes it over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

from runplane.policy import enforced

from ..engine import Engine
from ..errors import DatabaseError, RunCancelledError, RunLeasedError
from ..records import DEFAULT_QUEUE, RunRecord
from ..runtime.backend import DEFAULT_LEASE_SECONDS, DurableBackend
from ..runtime.remote_tools import remote_tools
from ..runtime.runner import resume_run
from .known import KnownAgents
from .tool_tasks import serve_tool_tasks

__all__ = ["DEFAULT_POLL", "Worker", "tool_task_service"]

log = logging.getLogger("runplane_durable.worker")

DEFAULT_POLL = 0.5  # seconds between two looks for work while there is none


def tool_task_service(
    engine: Engine, *, queue: str, stop: asyncio.Event
) -> Coroutine[Any, Any, None] | None:
    """The server of remote tool tasks (`worker.tool_tasks`) for the remote tools on the
    worker's queue that its modules defined (each `remote()` registers its tool when its module
    is imported: `runtime.remote_tools.remote_tools`), beside its run loop until `stop`; None
    when there are none."""
    tools = remote_tools(queue)
    if not tools:
        return None
    return serve_tool_tasks(engine, tools, queue=queue, stop=stop)


class Worker:
    """Runs the runs of `queue` whose agents it knows, at most `concurrency` at once."""

    def __init__(
        self,
        engine: Engine,
        known: KnownAgents,
        *,
        queue: str = DEFAULT_QUEUE,
        concurrency: int = 4,
        poll: float = DEFAULT_POLL,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if poll <= 0:
            raise ValueError(f"poll must be positive, got {poll}")
        self.engine = engine
        self.known = known
        self.queue = queue
        self.concurrency = concurrency
        self.poll = poll
        self.backend = DurableBackend(engine, lease_seconds=lease_seconds)
        self._running: dict[str, asyncio.Task[None]] = {}
        # Runs that raised here before their outcome could be recorded (an input or context
        # this process cannot rebuild): tried once, not at every look.
        self._given_up: set[str] = set()
        # When each run's execution here last ended (time.monotonic()), kept until no list of
        # claimable runs asked for before then can still arrive.
        self._ended: dict[str, float] = {}
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run until `stop` is set; then stop the runs in progress (each gives its
        lease back) and return once they have."""
        service = tool_task_service(self.engine, queue=self.queue, stop=stop)
        tool_tasks = asyncio.ensure_future(service) if service is not None else None
        try:
            while not stop.is_set():
                if tool_tasks is not None and tool_tasks.done():
                    tool_tasks.result()  # the tool task server failed: so does the worker
                await self._claim_some()
                await self._wait(stop)
        finally:
            await self._stop_runs()
            if tool_tasks is not None:
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await tool_tasks

    async def _wait(self, stop: asyncio.Event) -> None:
        """Until the next pass: `poll` seconds, or sooner when a run ends (a slot is free)."""
        self._wake.clear()
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _claim_some(self) -> None:
        free = self.concurrency - len(self._running)
        if free <= 0:
            return
        asked = time.monotonic()
        try:
            found = await self.engine.claimable_runs(
                agent_refs=sorted(self.known.by_ref),
                agent_names=sorted(self.known.by_name),
                queue=self.queue,
                limit=free + len(self._running),
            )
        except DatabaseError as exc:  # the database is away for a moment: look again later
            log.warning("worker: could not look for runs: %s", exc)
            return
        # A list asked for before one of our executions ended (its answer came late: a link
        # that dropped it) shows that run held by that execution, which counts as dead once
        # ended: the run would look orphaned. It is not that list's to claim.
        candidates = [
            r
            for r in found
            if r.id not in self._running
            and r.id not in self._given_up
            and self._ended.get(r.id, asked - 1) < asked
        ]
        self._ended = {run_id: t for run_id, t in self._ended.items() if t >= asked}
        # Workers that look at once would all try the same runs first: shuffled, they spread.
        random.shuffle(candidates)
        for record in candidates[:free]:
            agent = self.known.agent_for(record)
            if agent is None:  # listed by reference, with another agent under that name
                continue
            task = asyncio.ensure_future(self._execute(record, agent))
            self._running[record.id] = task
            task.add_done_callback(functools.partial(self._done, record.id))

    def _done(self, run_id: str, _: object) -> None:
        self._running.pop(run_id, None)
        self._ended[run_id] = time.monotonic()
        self._wake.set()

    async def _execute(self, record: RunRecord, agent: Any) -> None:
        what = "starting" if record.status == "queued" else "resuming"
        log.info("worker: %s run %s (agent %s)", what, record.id, record.agent_name)
        try:
            # Under the process-wide approval policy, as a program's runs are (the facade applies
            # it there): a run a guarded program started must not continue here unguarded.
            # A claim of the run in the status it was listed in: finished by another process
            # since, it is refused (RunLeasedError), never taken up again.
            await resume_run(self.backend, record, enforced(agent), claim=True)
        except RunLeasedError as exc:
            if exc.taken_over:  # it ran here, silent past its lease: its late steps refused
                log.warning("worker: gave up run %s: %s", record.id, exc)
            else:
                log.debug("worker: run %s was claimed by another process first", record.id)
            return
        except RunCancelledError:
            return
        except asyncio.CancelledError:
            log.info("worker: stopped run %s; its lease is given back", record.id)
            raise
        except (
            Exception
        ) as exc:  # recorded as the run's failure (if it started); the worker goes on
            self._given_up.add(record.id)
            log.error("worker: run %s failed: %s: %s", record.id, type(exc).__qualname__, exc)
            return
        log.info("worker: finished run %s", record.id)

    async def _stop_runs(self) -> None:
        running = list(self._running.values())
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
