"""The interface the durable runner talks to. `LocalEngine` implements it on a database.

A server-backed `RemoteEngine` will implement the same interface over HTTP, so the runner never
knows which one it has.
"""

from __future__ import annotations

from typing import Any, Protocol

from .records import EventRecord, JournalRecord, NewEvent, RunRecord, RunSpec, UsageDelta

__all__ = ["Engine", "RunSession"]


class RunSession(Protocol):
    """One process's hold on one run: its journal, and (unless read-only) its lease."""

    record: RunRecord
    journal: list[JournalRecord]
    created: bool
    read_only: bool

    async def append(
        self,
        *,
        journal: tuple[str, str, str | None, Any] | None = None,
        events: list[NewEvent] | None = None,
        usage: UsageDelta | None = None,
        wait: bool = True,
    ) -> None:
        """Commit one step (journal entry `(kind, key, fingerprint, payload)`, events, usage).

        With `wait=False` the caller does not wait for a commit that would have to queue: it
        runs at once if nothing is ahead of it and the database can take it without blocking
        (and then raises its own failure), else it is queued and this returns. Steps commit one
        at a time in the order they were appended; a queued commit that fails is raised by the
        next `append`, `finish` or `release`, which then commits nothing.
        """

    async def heartbeat(self) -> None:
        """Extend the lease; raise RunLeasedError if another process took the run over."""

    async def check_lease(self) -> None:
        """Raise RunLeasedError if this process may no longer hold the run (call before any
        live call out: a model call or a tool). Costs nothing while the lease is fresh."""

    async def finish(
        self,
        status: str,
        *,
        final_output: Any | None = None,
        error: BaseException | None = None,
        calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record the outcome (with `calls`, those awaiting approval) and give up the lease;
        the attempt ends with it."""

    async def release(self) -> None:
        """Give up the lease and leave the run resumable (the process is stopping)."""

    async def close(self) -> None: ...


class Engine(Protocol):
    async def open_run(self, spec: RunSpec, *, lease_seconds: float) -> RunSession:
        """Create the run, or open an existing one for replay; takes its lease unless finished."""

    async def get_run(self, run_id: str) -> RunRecord: ...

    async def list_runs(self, *, limit: int = 50, status: str | None = None) -> list[RunRecord]: ...

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[EventRecord]: ...

    async def read_journal(self, run_id: str) -> list[JournalRecord]: ...

    async def dispose(self) -> None: ...
