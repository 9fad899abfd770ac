"""The one `RunSession` implementation: a session's state, and its writes sent through a `Writer`.

A session keeps what an execution knows of its run (its lease holder, attempt, next journal and
event seqs, when it last renewed its lease, a queued write's failure) and turns each step into a
write of `writes.py`. Where the write goes is the `Writer`'s business: `LocalEngine`'s runs it on
its database, `RemoteEngine`'s posts it to a server, which hands it to its own `LocalEngine`
(`SessionHost.apply`). So both engines behave alike by construction: ordering, queued writes,
fencing, the lease check and giving a lease back are written once, here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol, TypeVar

from . import lazy_errors as errors
from .attempts import REASONS, Attempt
from .events import ApprovalRequested, EndReason, PendingCall, outcome
from .owner import retire
from .records import (
    CancelMode,
    JournalEntry,
    NewEvent,
    RunSpec,
    RunStatus,
    Snapshot,
    UsageDelta,
    check_status,
)
from .writes import Append, Finish, Heartbeat, Interrupt, Opened, Release, Write

__all__ = [
    "MUST_WAIT",
    "Fenced",
    "JournaledSession",
    "MustWait",
    "SessionHost",
    "Writer",
    "say_opened",
]

T = TypeVar("T")
log = logging.getLogger("runplane_durable")


class MustWait:
    """`Writer.write_now` could not apply the write without waiting: use `write`."""

    def __repr__(self) -> str:
        return "MUST_WAIT"


MUST_WAIT: Final = MustWait()

# What a fenced write found: None if the run was no longer the session's; else the stop asked
# for the run (None: none) and the seq its first event got (the engine may number events itself,
# as another process's events can come between a session's own).
Fenced = tuple[CancelMode | None, int] | None


class Writer(Protocol):
    """Where a session's writes go. Each returns what it found (`Fenced`; a `Release` is never
    refused)."""

    def write_now(self, write: Write) -> Fenced | MustWait:
        """Apply it at once on this thread if that cannot block, else MUST_WAIT (nothing can
        interrupt a write that never yields, so the caller needs no task or shield)."""

    async def write(self, write: Write) -> Fenced: ...

    async def cancel_requested(self, run_id: str) -> CancelMode | None:
        """The stop asked for the run from another process, if any (a cheap read)."""

    def unreleased(self, release: Release) -> None:
        """`release` failed (the database or server is away): give it back when it works."""

    async def close(self) -> None: ...


class SessionHost(Protocol):
    """What serving sessions on behalf of other processes asks of an engine (a server's): open
    a run for a holder named by the client, and apply that client's writes. Stateless: every
    call carries what it needs, so any server on the database can take any call."""

    async def open_for(
        self,
        spec: RunSpec,
        *,
        owner: str,
        lease_seconds: float,
        dead_holder: str | None = None,
    ) -> Opened:
        """Open the run as `Engine.open_run` does, for lease holder `owner`. `dead_holder`: a
        holder the client knows is dead (a process of its host), taken over at once. Opening it
        again for the same `owner` (a retried request) writes nothing more and returns the same
        opening."""

    async def apply(self, write: Write, *, retried: bool = False) -> Fenced:
        """Apply one session write; `retried`: it may have been applied already (its response
        was lost), and then it is recognised and not applied again."""

    async def cancel_requested(self, run_id: str) -> CancelMode | None: ...


class JournaledSession:
    """A run's session: every write one committed transaction, one at a time, in order."""

    def __init__(self, writer: Writer, opened: Opened, *, owner: str, lease_seconds: float) -> None:
        self._writer = writer
        self.record = opened.record
        self.journal = opened.journal
        self.read_only = opened.attempt is None
        self.cancel_requested: CancelMode | None = opened.record.cancel_requested
        self._settled = self.read_only  # the outcome is committed, or the lease given back
        self._owner = owner
        # None for a finished run: read only, no attempt
        self._attempt = None if opened.attempt is None else Attempt(opened.attempt, owner)
        self._lease_seconds = lease_seconds
        self._journal_seq = opened.next_journal_seq
        self._event_seq = opened.next_event_seq
        self._lock = asyncio.Lock()
        self._closed = False
        self._background: set[asyncio.Future[Any]] = set()
        self._failure: BaseException | None = None
        self._lost = False
        # When the lease was last extended, by this process's clock (the lease runs from then).
        self._renewed = time.monotonic()

    @property
    def run_id(self) -> str:
        return self.record.id

    @property
    def owner(self) -> str:
        return self._owner

    async def _locked(self, write: Callable[[], Awaitable[T]], *, queued: bool = False) -> T:
        async with self._lock:
            if self._failure is not None:  # a queued write failed: no step may follow it
                raise self._failure
            try:
                return await write()
            except BaseException as exc:
                if queued:  # recorded before the lock passes on to the next write
                    self._failure = exc
                raise

    async def _shielded(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run one write to completion even if the caller is cancelled meanwhile.

        The SDK cancels sibling tool tasks when one fails; a write cut off mid-transaction would
        leave the connection broken and lose the step. Shielded, a step is either committed
        whole or not begun, and the next write waits for it on the lock.
        """
        return await asyncio.shield(asyncio.ensure_future(self._locked(write)))

    def _in_background(self, write: Callable[[], Awaitable[None]]) -> None:
        """Queue a write behind the ones before it; a failure surfaces at the next write."""
        task = asyncio.ensure_future(self._locked(write, queued=True))
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # kept in self._failure; retrieved here so asyncio does not log it

    def _lost_lease(self) -> errors.RunLeasedError:
        return errors.RunLeasedError(run_id=self.run_id, taken_over=True)

    async def _commit(
        self, make: Callable[[], Write], done: Callable[[Fenced], None], *, wait: bool = True
    ) -> None:
        """One write, after every write before it.

        `make` is called when the write runs (the sequence numbers are the session's at that
        moment). When nothing is ahead of it and the writer can apply it without blocking, it
        runs at once: no task, no lock, and nothing that could interrupt it.
        """
        if not self._lock.locked() and not self._background and self._failure is None:
            found = self._writer.write_now(make())
            if not isinstance(found, MustWait):
                done(found)
                return

        async def write() -> None:
            done(await self._writer.write(make()))

        if wait:
            await self._shielded(write)
        else:
            self._in_background(write)

    def _fenced(self, found: Fenced) -> tuple[CancelMode | None, int]:
        """What a fenced write found; RunLeasedError if the run was no longer ours."""
        if found is None:
            self._lost = True
            raise self._lost_lease()
        self.cancel_requested = found[0]  # every fenced write reads the run's stop request
        return found

    def _renewed_at(self, started: float) -> Callable[[Fenced], None]:
        def done(found: Fenced) -> None:
            self._fenced(found)
            self._renewed = max(self._renewed, started)

        return done

    async def check_lease(self) -> None:
        """Raise RunLeasedError if this process may no longer hold the run.

        Free while the lease is fresh (every step and heartbeat renews it); once half of it has
        passed since the last renewal (the process was stalled), one heartbeat asks the
        engine, so a holder that lost its run finds out before calling out again.
        """
        if self._lost:
            raise self._lost_lease()
        if time.monotonic() - self._renewed > self._lease_seconds / 2:
            await self.heartbeat()

    async def poll_cancel(self, *, fresh_within: float = 0.0) -> CancelMode | None:
        """Ask the engine whether a stop was asked for the run from another process (a read
        beside the session's writes, never queued behind them); the answer is kept in
        `cancel_requested`. A finished or settled session has nothing left to stop. A write
        answered within `fresh_within` seconds read the request already (`_renewed` is when
        the latest answered one was sent): no read then."""
        if self.read_only or self._settled:
            return self.cancel_requested
        if fresh_within > 0 and time.monotonic() - self._renewed < fresh_within:
            return self.cancel_requested
        self.cancel_requested = await self._writer.cancel_requested(self.run_id)
        return self.cancel_requested

    async def append(
        self,
        *,
        journal: JournalEntry | None = None,
        events: list[NewEvent] | None = None,
        usage: UsageDelta | None = None,
        wait: bool = True,
    ) -> None:
        new_events = events or []

        def make() -> Write:
            return Append(
                self.run_id,
                self._owner,
                self._lease_seconds,
                self._journal_seq,
                self._event_seq,
                journal,
                new_events,
                usage,
            )

        started = time.monotonic()

        def done(found: Fenced) -> None:
            _, first = self._fenced(found)
            self._renewed = max(self._renewed, started)
            if journal is not None:
                self._journal_seq += 1
            self._event_seq = first + len(new_events)

        await self._commit(make, done, wait=wait)

    async def heartbeat(self) -> None:
        await self._commit(
            lambda: Heartbeat(self.run_id, self._owner, self._lease_seconds),
            self._renewed_at(time.monotonic()),
        )

    async def finish(
        self,
        status: RunStatus,
        *,
        final_output: Any | None = None,
        error: BaseException | None = None,
        calls: Sequence[PendingCall] | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        if check_status(status) == "running":
            raise ValueError(
                "finish records a run's outcome: 'completed', 'failed', 'cancelled' or "
                "'awaiting_approval', not 'running'"
            )
        error_type = (
            None if error is None else f"{type(error).__module__}.{type(error).__qualname__}"
        )
        # An error's message may quote what broke the run (a NUL, a lone surrogate): stored as
        # escapes, so recording the failure cannot fail the same way. (serde imports pydantic:
        # on first use, so `runplane runs`, which imports this module, starts without it.)
        from .serde import storable_text

        message = None if error is None else storable_text(str(error))
        ended = outcome(
            status, final_output=final_output, error_type=error_type, error=message, calls=calls
        )
        event = NewEvent(ended.TYPE, ended.to_payload())
        new_events = [self._ended(REASONS[ended.STATUS]), event]
        if snapshot is not None:
            if status != "awaiting_approval":
                raise ValueError("only a run awaiting approval is stored with a snapshot")
            # The calls asked for before the outcome, so the outcome stays the run's last
            # event; the attempt's end first, which makes a retried write recognisable.
            new_events[1:1] = [
                NewEvent(ApprovalRequested.TYPE, requested.to_payload())
                for requested in (
                    ApprovalRequested(a.call_id, a.tool_name, a.key, _shown(a.arguments))
                    for a in snapshot.approvals
                )
            ]

        def make() -> Write:
            if snapshot is not None:
                return Interrupt(self.run_id, self._owner, self._event_seq, new_events, snapshot)
            return Finish(
                self.run_id,
                self._owner,
                self._event_seq,
                new_events,
                status,
                final_output,
                error_type,
                message,
            )

        def done(found: Fenced) -> None:
            _, first = self._fenced(found)
            self._event_seq = first + len(new_events)
            self._settled = True

        await self._commit(make, done)

    def _ended(self, reason: EndReason) -> NewEvent:
        assert self._attempt is not None, "a finished run's session writes nothing"
        return self._attempt.ended(reason, ended_at=time.time())

    async def release(self) -> None:
        """Give the lease up: the attempt ends "interrupted" (Ctrl-C, a cancelled task or
        stream), and the run is resumable at once."""
        ended = self._ended("interrupted")

        def done(_: Fenced) -> None:
            self._settled = True
            self._event_seq += 1

        await self._commit(lambda: Release(self.run_id, self._owner, ended), done)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            # The session ends only once every queued write is done.
            while self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            if not self._settled and not self._lost:
                await self._give_back_lease()
            retire(self._owner)  # from now on this process knows the execution is over
            await self._writer.close()

    async def _give_back_lease(self) -> None:
        """The outcome could not be recorded (a failed write): leave the run resumable by giving
        its lease back now, or, if the engine still fails, as soon as it works again."""
        release = Release(self.run_id, self._owner, self._ended("interrupted"))
        try:
            await self._writer.write(release)
        except Exception:
            self._writer.unreleased(release)
            log.warning(
                "run %s keeps its lease until the database works again", self.run_id, exc_info=True
            )


def say_opened(spec: RunSpec, opened: Opened, where: str) -> None:
    """Tell the user at once what opening the run did, when it may not be what they meant.

    WARNING, the level a program shows without any logging set up: resuming skips calls
    (and runs the tool in flight at a crash again), and a new run under a name the user
    chose may be one they meant to resume from another database. Once per opening, in the
    process that runs the program (a server says nothing on its behalf).
    """
    if opened.created:
        if spec.named:
            log.warning("started new run %s in the %s", spec.run_id, where)
        return
    entries = opened.journal
    models = sum(1 for e in entries if e.kind == "model")
    tools = sum(1 for e in entries if e.kind == "tool")
    counts = f"{_count(models, 'model call')} and {_count(tools, 'tool output')} from the journal"
    if opened.attempt is None:  # finished: its stored result, by replay alone
        log.info("replaying finished run %s: %s (%s)", spec.run_id, counts, where)
    elif opened.attempt == 1 and not entries:  # queued by Runner.start: its first start
        log.info("started queued run %s (%s)", spec.run_id, where)
    else:
        log.warning(
            "resumed run %s: %s (attempt %d, %s)", spec.run_id, counts, opened.attempt, where
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# Arguments longer than this are kept with the approval only (`Engine.list_approvals`), not in
# the event log, as the events keep long values out of their payloads.
_SHOWN_ARGUMENTS = 4096


def _shown(arguments: str) -> str | None:
    return arguments if len(arguments) <= _SHOWN_ARGUMENTS else None
