"""The run a task is executing durably, visible to the interceptors through a context variable.

The interceptors are installed process-wide but act only while `ACTIVE` holds a run, so runs on
other backends (and the SDK's own) are untouched. Nested runs started by a tool get their own
scope: a tool invocation clears `ACTIVE` while it runs.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from dataclasses import dataclass, field

from .engine import RunSession
from .errors import ReplayDivergenceError
from .records import JournalRecord

__all__ = ["ACTIVE", "ActiveRun"]


@dataclass
class ActiveRun:
    """Replay cursor and writer for one run."""

    opening: Awaitable[RunSession]
    streamed: bool
    _session: RunSession | None = None
    _models: list[JournalRecord] = field(default_factory=list)
    _tools: dict[str, JournalRecord] = field(default_factory=dict)
    model_ordinal: int = 0  # model calls completed so far, live or replayed
    _open_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def session(self) -> RunSession:
        if self._session is None:
            async with self._open_lock:
                if self._session is None:
                    session = await self.opening
                    self._models = [e for e in session.journal if e.kind == "model"]
                    self._tools = {e.key: e for e in session.journal if e.kind == "tool"}
                    self._session = session
        return self._session

    def recorded_model(self, fingerprint: str, describe: str) -> JournalRecord | None:
        """The journaled response for the next model call, checked against what is asked now."""
        assert self._session is not None
        if self.model_ordinal >= len(self._models):
            if self._session.read_only:
                raise ReplayDivergenceError(
                    f"run {self._session.record.id!r} is finished, but replaying it asked for "
                    f"model call #{self.model_ordinal + 1} ({describe}), which it never made. "
                    "The program's agents or tools changed since the run; start a new run id."
                )
            return None
        entry = self._models[self.model_ordinal]
        if entry.fingerprint != fingerprint:
            recorded = entry.payload.get("describe", "?")
            raise ReplayDivergenceError(
                f"replay of run {self._session.record.id!r} diverged at model call "
                f"#{self.model_ordinal + 1}: the journal recorded a request for {recorded}, but "
                f"the program now asks {describe} with different instructions, input or tools. "
                "The agent definition, instructions or a tool changed since the run started. "
                "Restore the program as it was to resume this run, or start a new run id."
            )
        return entry

    def recorded_tool(self, key: str) -> JournalRecord | None:
        entry = self._tools.get(key)
        if entry is None and self._session is not None and self._session.read_only:
            raise ReplayDivergenceError(
                f"run {self._session.record.id!r} is finished, but replaying it ran tool call "
                f"{key!r}, which it never made. The program changed since the run; start a new "
                "run id."
            )
        return entry

    def remember_tool(self, entry: JournalRecord) -> None:
        self._tools[entry.key] = entry


ACTIVE: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar(
    "runplane_durable_active_run", default=None
)
REQUESTED_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runplane_durable_requested_run_id", default=None
)
LAST_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runplane_durable_last_run_id", default=None
)
