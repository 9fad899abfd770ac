"""`RunHandle`: a started run seen from any process, through the engine alone.

`Runner.start` returns one; `Runner.handle(run_id)` makes one for a run started elsewhere. It
holds no lease and runs nothing: it reads the run's record and events (polling the engine, so
it works embedded and over a remote engine alike) and asks the engine to cancel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent
from agents.stream_events import StreamEvent

from ..engine import Engine
from ..errors import RunCancelledError, RunFailedError
from ..events import in_full, parse
from ..records import CancelMode, RunRecord, RunStatus
from ..serde import load_value
from ..states import FINISHED
from .stream_items import StreamRebuilder

__all__ = ["RunHandle"]

DEFAULT_POLL = 0.2  # seconds between two looks at the run while waiting


class RunHandle:
    """A run started for a worker: its id, its status, its outcome, its events as they come."""

    def __init__(self, run_id: str, engine: Engine, *, agent: Agent[Any] | None = None) -> None:
        self.run_id = run_id
        self.engine = engine
        self.agent = agent

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"

    async def get_run(self) -> RunRecord:
        return await self.engine.get_run(self.run_id)

    async def status(self) -> RunStatus:
        """The stored status now: `queued` until a worker starts it, then `running`, then its
        outcome (`runplane_durable.states.run_state` tells a running run from an orphaned one)."""
        return (await self.get_run()).status

    async def result(self, *, timeout: float | None = None, poll: float = DEFAULT_POLL) -> Any:
        """Wait for the run to finish and return its final output, rebuilt as the run produced
        it (a pydantic model or dataclass as itself, when its class is imported here).

        A failed run raises `RunFailedError` naming the stored error type and message; a
        cancelled one `RunCancelledError`; `timeout` seconds without an outcome, TimeoutError.
        A run waiting for approval is waited for. For the SDK's whole `RunResult`, resume the
        finished run with its agent (`await Runner.resume(run_id, agent)`): it is replayed from
        the journal, with no model or tool call.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = await self.get_run()
            if record.status == "completed":
                return None if record.final_output is None else load_value(record.final_output)
            if record.status == "failed":
                raise RunFailedError(
                    run_id=record.id, error_type=record.error_type, error=record.error
                )
            if record.status == "cancelled":
                raise RunCancelledError(run_id=record.id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"run {self.run_id!r} did not finish within {timeout} s (it is "
                    f"{record.status}); is a worker that knows agent {record.agent_name!r} "
                    f"serving queue {record.queue!r}? (`runplane worker MODULE --queue ...`)"
                )
            await asyncio.sleep(poll)

    async def cancel(self, mode: CancelMode = "immediate") -> RunRecord:
        """Ask the engine to cancel the run, wherever it executes (`Engine.cancel_run`)."""
        return await self.engine.cancel_run(self.run_id, mode=mode)

    async def stream_events(
        self, *, after: int = 0, poll: float = DEFAULT_POLL
    ) -> AsyncIterator[StreamEvent]:
        """The run's SDK stream events (`AgentUpdatedStreamEvent`, `RunItemStreamEvent`),
        rebuilt from its event log as the steps commit, until it finishes (or stops for an
        approval). Raw response events are not stored and are not given; see
        `stream_items.StreamRebuilder` for which items come back and how."""
        rebuild = StreamRebuilder(self.agent)
        seq = after
        while True:
            record = await self.get_run()  # before the events: none written after it is missed
            events = await self.engine.list_events(self.run_id, after=seq)
            parsed = [parse(e) for e in events]
            if any(getattr(p, "in_journal", False) for p in parsed):
                parsed = in_full(parsed, await self.engine.read_journal(self.run_id))
            for event in parsed:
                for sdk_event in rebuild.add(event):
                    yield sdk_event
            if events:
                seq = events[-1].seq
            elif record.status in FINISHED or record.status == "awaiting_approval":
                return
            else:
                await asyncio.sleep(poll)
