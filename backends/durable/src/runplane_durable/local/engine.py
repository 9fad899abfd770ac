"""`LocalEngine`: the engine on a database this process opens itself (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from .. import lazy_errors as errors
from ..attempts import REASONS, Attempt, next_number, unended
from ..engine import LATENCY_BUCKETS, Measures
from ..events import CancelRequested, EndReason, PendingCall, RunQueued, outcome, parse
from ..names import check_agent_name, check_run_id
from ..owner import current_owner, owner_is_dead, requester, retire
from ..records import (
    CANCEL_MODES,
    DEFAULT_QUEUE,
    CancelMode,
    EventRecord,
    JournalEntry,
    JournalRecord,
    NewEvent,
    RunRecord,
    RunSpec,
    RunStatus,
    TaskLease,
    TaskRecord,
    TaskResult,
    TaskSpec,
    UsageDelta,
    check_status,
    read_run_cursor,
)
from ..serde import storable_text
from . import sql
from .database import (
    DEFAULT_DIR,
    DEFAULT_FILE,
    ENV_DATABASE_URL,
    Database,
    Transactions,
    describe,
    locate,
)
from .location import passed_over
from .settings import Durability, StoreSettings
from .transactions import MustWait

__all__ = ["LocalEngine", "LocalRunSession"]

T = TypeVar("T")
log = logging.getLogger("runplane_durable")


class LocalEngine:
    """Engine on a database URL (default: the nearest `.runplane/runplane.db` from the working
    directory up, else a new one under `.runplane/` in it; see `location.py`).

    `pool_size`, `timeout` and `durability` default to RUNPLANE_DB_POOL_SIZE, RUNPLANE_DB_TIMEOUT
    and RUNPLANE_DURABILITY (see `StoreSettings`). `read_only=True` is for looking at runs: the
    database must exist, and nothing is created or written (no file, directory or schema).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int | None = None,
        timeout: float | None = None,
        durability: Durability | None = None,
        read_only: bool = False,
    ) -> None:
        self.location = locate(url)
        self.url = self.location.url
        self.read_only = read_only
        self.settings = StoreSettings.from_env(
            pool_size=pool_size, timeout=timeout, durability=durability
        )
        self._db: Database | None = None
        # Runs whose lease this process could not give back (the database failed), with the
        # owner and its attempt's end; given back by the next transaction that works.
        self._unreleased: dict[str, tuple[str, NewEvent | None]] = {}

    def __repr__(self) -> str:
        return f"LocalEngine({describe(self.url)})"

    def describe(self) -> str:
        return describe(self.url)

    @property
    def database(self) -> Database:
        if self._db is None:
            if self.read_only:
                self._refuse_missing()
            self._db = Database(self.url, self.settings, read_only=self.read_only)
        return self._db

    def _refuse_missing(self) -> None:
        """A reader never creates a database: say where none was found, and how to name one."""
        where = self.location
        if where.source == "new":
            looked = ", ".join(str(d) for d in where.searched)
            skipped = "".join(
                f" Passed over {path}: another user could have put it there."
                for path in passed_over(where.searched)
            )
            raise errors.DatabaseError(
                f"no runplane database here (looked for {DEFAULT_DIR}/{DEFAULT_FILE} in "
                f"{looked}); nothing was created. Run a durable program in this directory or "
                f"one above it first, or name the database with --db or {ENV_DATABASE_URL}."
                + skipped
            )
        path = where.sqlite_path
        if path is not None and not path.is_file():
            named = {"environment": f" (from {ENV_DATABASE_URL})"}.get(where.source, "")
            raise errors.DatabaseError(
                f"no SQLite database at {path}{named}; nothing was created. Check the path "
                "(without one, the nearest .runplane/runplane.db is used)."
            )

    def _refuse_read_only(self, what: str) -> None:
        if self.read_only:
            raise errors.DatabaseError(
                f"this LocalEngine opened the {describe(self.url)} read-only (read_only=True); "
                f"{what} on an engine made without it.",
                database=describe(self.url),
            )

    async def open_run(self, spec: RunSpec, *, lease_seconds: float) -> LocalRunSession:
        self._refuse_read_only("runs execute")
        tx = await self.database.transactions()
        try:
            await self._release_left_over(tx)
            return await self._open(tx, spec, lease_seconds)
        except BaseException:
            await tx.close()
            raise

    def _left_unreleased(self, run_id: str, owner: str, ended: NewEvent | None) -> None:
        self._unreleased[run_id] = (owner, ended)

    async def _release_left_over(self, tx: Transactions) -> None:
        for run_id, (owner, ended) in list(self._unreleased.items()):
            try:
                await tx.call(sql.release, run_id, owner, ended)
            except errors.DatabaseError:
                log.warning("run %s still holds a lease this process could not give back", run_id)
                return
            self._unreleased.pop(run_id, None)
            log.info("gave back the lease of run %s after the database recovered", run_id)

    async def _open(self, tx: Transactions, spec: RunSpec, lease_seconds: float) -> LocalRunSession:
        owner = current_owner()
        try:
            # A new run is one insert, with its first attempt's event (on SQLite, on the loop's
            # thread when the file is free).
            first = Attempt(1, owner)
            started = first.started(journal=[], lease_seconds=lease_seconds, now=time.time())
            new = await tx.call(sql.create_run, spec, owner, lease_seconds, started)
            entries: list[JournalRecord]
            attempt: Attempt | None
            if new is not None:
                created, row, entries, last_event, attempt = True, new, [], 1, first
            else:  # one hop to the database for the whole claim, not one per statement
                created = False
                claimed = await tx.call(_claim_sync, spec, owner, lease_seconds)
                if isinstance(claimed, RunRecord):  # a pending cancel, carried out now
                    raise errors.RunCancelledError(run_id=spec.run_id)
                row, entries, last_event, attempt = claimed
        except BaseException:
            retire(owner)
            raise
        self._say_opened(spec, row, entries, created, attempt)
        database = self.database
        run_id = spec.run_id

        async def read_cancel() -> CancelMode | None:
            return await database.call(sql.cancel_requested, run_id)

        return LocalRunSession(
            tx,
            on_unreleased=self._left_unreleased,
            read_cancel=read_cancel,
            record=row,
            journal=entries,
            read_only=row.status == "completed",
            owner=owner,
            attempt=attempt,
            lease_seconds=lease_seconds,
            next_journal_seq=(entries[-1].seq + 1) if entries else 1,
            next_event_seq=last_event + 1,
        )

    def _say_opened(
        self,
        spec: RunSpec,
        row: RunRecord,
        entries: list[JournalRecord],
        created: bool,
        attempt: Attempt | None,
    ) -> None:
        """Tell the user at once what opening the run did, when it may not be what they meant.

        WARNING, the level a program shows without any logging set up: resuming skips calls
        (and runs the tool in flight at a crash again), and a new run under a name the user
        chose may be one they meant to resume from another database. Once per opening.
        """
        if created:
            if spec.named:
                log.warning("started new run %s in the %s", spec.run_id, describe(self.url))
            return
        where = describe(self.url)
        models = sum(1 for e in entries if e.kind == "model")
        counts = (
            f"{_count(models, 'model call')} and {_count(len(entries) - models, 'tool output')} "
            "from the journal"
        )
        if attempt is None:  # finished: its stored result, by replay alone
            log.info("replaying finished run %s: %s (%s)", spec.run_id, counts, where)
        elif attempt.number == 1 and not entries:  # queued by Runner.start: its first start
            log.info("started queued run %s (%s)", spec.run_id, where)
        else:
            log.warning(
                "resumed run %s: %s (attempt %d, %s)", spec.run_id, counts, attempt.number, where
            )

    async def enqueue_run(self, spec: RunSpec) -> RunRecord:
        self._refuse_read_only("runs are started")
        queue = spec.queue if spec.queue is not None else DEFAULT_QUEUE
        spec = dataclasses.replace(spec, queue=queue)
        queued = RunQueued(queue, spec.agent_ref)
        created, row = await self.database.call(
            sql.enqueue_run, spec, NewEvent(queued.TYPE, queued.to_payload())
        )
        if not created:
            _check_same_run(spec, row)
        return row

    async def claimable_runs(
        self,
        *,
        agent_refs: Sequence[str],
        agent_names: Sequence[str],
        queue: str,
        limit: int,
    ) -> list[RunRecord]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        free, held_here = await self.database.call(
            sql.claimable_runs,
            list(agent_refs),
            list(agent_names),
            queue,
            limit,
            f"{socket.gethostname()}:",
        )
        # Held by a process of this host: claimable once that process is gone.
        dead = [r for r in held_here if r.owner is not None and owner_is_dead(r.owner)]
        orphans = sorted(
            [r for r in free if r.status == "running"] + dead, key=lambda r: (r.created_at, r.id)
        )
        return [*orphans, *(r for r in free if r.status == "queued")][:limit]

    async def get_run(self, run_id: str) -> RunRecord:
        record = await self.database.call(sql.get_run, check_run_id(run_id))
        if record is None:
            raise errors.RunNotFoundError(run_id=run_id, database=describe(self.url))
        return record

    async def list_runs(
        self,
        *,
        limit: int | None = 50,
        status: RunStatus | None = None,
        agent: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        cursor: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered and paged as `Engine.list_runs` says."""
        if status is not None:
            check_status(status)  # a caller's string (the CLI's --status): say what is allowed
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit must be a count of runs (0 or more) or None, got {limit!r}")
        for name, value in (("created_after", created_after), ("created_before", created_before)):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite time in seconds, got {value!r}")
        older_than = None
        if cursor is not None:
            created_at, last_id = read_run_cursor(cursor)
            older_than = (created_at, check_run_id(last_id))
        runs = sql.RunFilter(
            status=status,
            agent=None if agent is None else check_agent_name(agent),
            created_after=created_after,
            created_before=created_before,
            older_than=older_than,
        )
        return await self.database.call(sql.list_runs, limit, runs)

    async def measure(self, *, buckets: Sequence[float] = LATENCY_BUCKETS) -> Measures:
        """What the database holds now (`engine.Measured`), for a server's /metrics."""
        bounds = tuple(float(b) for b in buckets)
        if list(bounds) != sorted(set(bounds)) or not all(math.isfinite(b) for b in bounds):
            raise ValueError(f"latency buckets must be finite and ascending, got {bounds}")
        return await self.database.call(sql.measure, bounds)

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        return await self.database.call(sql.list_events, check_run_id(run_id), after, limit)

    async def read_journal(self, run_id: str) -> list[JournalRecord]:
        return await self.database.call(sql.read_journal, check_run_id(run_id))

    # -- remote tool tasks (the contract's docstrings say what each does) -------------------------

    async def enqueue_task(self, spec: TaskSpec) -> TaskRecord:
        check_run_id(spec.run_id)
        _check_task_spec(spec)
        return await self.database.call(sql.enqueue_task, uuid.uuid4().hex, spec)

    async def get_task(self, task_id: str) -> TaskRecord:
        task = await self.database.call(sql.get_task, task_id)
        if task is None:
            raise errors.TaskNotFoundError(task_id=task_id)
        return task

    async def list_tasks(self, run_id: str) -> list[TaskRecord]:
        return await self.database.call(sql.list_tasks, check_run_id(run_id))

    async def claim_task(
        self, *, queue: str, tools: Sequence[str], owner: str, lease_seconds: float
    ) -> TaskRecord | None:
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        if not tools:
            return None
        return await self.database.call(
            sql.claim_task, queue, list(tools), owner, lease_seconds, owner_is_dead
        )

    async def heartbeat_task(self, lease: TaskLease) -> None:
        if not await self.database.call(sql.heartbeat_task, lease):
            raise await self._task_lost(lease)

    async def complete_task(self, lease: TaskLease, result: TaskResult) -> TaskRecord:
        task = await self.database.call(sql.complete_task, lease, result)
        if task is None:
            raise await self._task_lost(lease)
        return task

    async def fail_task(self, lease: TaskLease, error: str) -> TaskRecord:
        task = await self.database.call(sql.fail_task, lease, storable_text(error))
        if task is None:
            raise await self._task_lost(lease)
        return task

    async def _task_lost(self, lease: TaskLease) -> errors.TaskLeaseLostError:
        """Why a write under `lease` found the task no longer the attempt's."""
        now = await self.get_task(lease.task_id)  # TaskNotFoundError if it never existed
        return errors.TaskLeaseLostError(
            task_id=lease.task_id, attempt=lease.attempt, status=now.status, attempts=now.attempts
        )

    async def cancel_run(self, run_id: str, *, mode: CancelMode = "immediate") -> RunRecord:
        """See `Engine.cancel_run`: one transaction, by this process, on behalf of whoever
        called (its host, pid and user go into the `cancel_requested` event)."""
        if mode not in CANCEL_MODES:
            modes = ", ".join(CANCEL_MODES)
            raise ValueError(f"{mode!r} is not a cancel mode; use one of: {modes}")
        self._refuse_read_only("runs are cancelled")
        host, pid, user = requester()
        asked = CancelRequested(mode, host, pid, user, time.time())
        found = await self.database.call(
            sql.cancel_run,
            check_run_id(run_id),
            mode,
            asked,
            owner_is_dead,
            _attempt_end,
        )
        if found is None:
            raise errors.RunNotFoundError(run_id=run_id, database=describe(self.url))
        if found.status in ("completed", "failed"):
            raise errors.RunFinishedError(run_id=run_id, status=found.status)
        return found

    async def prune(self, *, finished_before: float) -> int:
        """See `Engine.prune`: `PRUNE_BATCH` runs per transaction, until none is left."""
        self._refuse_read_only("runs are pruned")
        deleted = 0
        while True:
            batch = await self.database.call(sql.prune, float(finished_before), PRUNE_BATCH)
            deleted += batch
            if batch < PRUNE_BATCH:
                return deleted
            await asyncio.sleep(0)  # let this process's runs write between two batches

    async def dispose(self) -> None:
        if self._db is not None:
            if self._unreleased:
                with contextlib.suppress(errors.DatabaseError):
                    await self._release_left_over(await self._db.transactions())
            await self._db.dispose()


def _check_task_spec(spec: TaskSpec) -> None:
    """A task the engine can retry as its spec says; else a ValueError saying what to change."""
    if isinstance(spec.max_attempts, bool) or not isinstance(spec.max_attempts, int):
        raise ValueError(f"max_attempts is a whole number, got {spec.max_attempts!r}")
    if spec.max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {spec.max_attempts}")
    if not (math.isfinite(spec.retry_delay) and spec.retry_delay >= 0):
        raise ValueError(f"retry_delay must be 0 or more seconds, got {spec.retry_delay}")
    if spec.timeout is not None and not (math.isfinite(spec.timeout) and spec.timeout > 0):
        raise ValueError(f"timeout must be positive seconds or None, got {spec.timeout}")
    if not spec.queue:
        raise ValueError("a task's queue is a non-empty name")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _check_same_run(spec: RunSpec, row: RunRecord) -> None:
    """An id names one run: reused, it must come with the run's own agent and input."""
    if row.agent_name != spec.agent_name:
        raise errors.RunInputMismatchError(
            run_id=spec.run_id,
            what_changed="agent",
            recorded_agent=row.agent_name,
            agent=spec.agent_name,
        )
    if row.input_fingerprint != spec.input_fingerprint:
        raise errors.RunInputMismatchError(run_id=spec.run_id, what_changed="input")


# Runs deleted per transaction by `prune`: each batch holds the database briefly, and a run's
# rows (its events, its journal) go with it in the same batch.
PRUNE_BATCH = 100


def _attempt_end(
    run: RunRecord, last_type: str | None, last_payload: dict[str, Any] | None
) -> list[NewEvent]:
    """The end of the run's last attempt, if it never wrote one (its process died)."""
    last = None if last_type is None else parse(NewEvent(last_type, last_payload or {}))
    ended = unended(last, run, time.time())
    return [] if ended is None else [ended]


def _claim_sync(
    conn: Connection, spec: RunSpec, owner: str, lease_seconds: float
) -> tuple[RunRecord, list[JournalRecord], int, Attempt | None] | RunRecord:
    """Claim an existing run, and read what a replay needs, in one transaction function; or,
    for a run asked to stop that no process executes any more, record it cancelled and return
    it.

    The claim logs the new attempt's start, after the end of the previous attempt if that one
    never wrote it (its process was killed, or stalled past its lease), in the claim's own
    transaction. A finished run is only read: replaying it is no attempt.
    """
    row = sql.get_run(conn, spec.run_id)
    if row is None:  # deleted between the insert that found it and now: a new run after all
        raise errors.RunNotFoundError(run_id=spec.run_id, vanished=True)
    _check_same_run(spec, row)
    if row.status == "cancelled":
        raise errors.RunCancelledError(run_id=spec.run_id)
    if row.status == "completed":
        entries = sql.read_journal(conn, spec.run_id)
        return row, entries, sql.max_event_seq(conn, spec.run_id), None
    if row.cancel_requested is not None and not sql.executing(row, time.time(), owner_is_dead):
        # Asked to stop while its holder ran it, and the holder stopped without carrying it
        # out (killed, or interrupted): carried out now, instead of running it again.
        cancelled = sql.cancel_run(conn, spec.run_id, None, None, owner_is_dead, _attempt_end)
        if cancelled is not None and cancelled.status == "cancelled":
            return cancelled
        row = sql.record(sql.get_run_row(conn, spec.run_id))
    holder = row.owner
    dead = holder if holder is not None and owner_is_dead(holder) else None
    attempt: list[Attempt] = []

    def attempt_events(
        run: RunRecord,
        journal: list[JournalRecord],
        last_type: str | None,
        last_payload: dict[str, Any] | None,
    ) -> list[NewEvent]:
        now = time.time()
        last = None if last_type is None else parse(NewEvent(last_type, last_payload or {}))
        ours = Attempt(next_number(last), owner)
        attempt.append(ours)
        previous = unended(last, row, now)
        started = ours.started(journal=journal, lease_seconds=lease_seconds, now=now)
        return [started] if previous is None else [previous, started]

    # Claimed only in the status read above: a run finished since (its holder gave the lease
    # up) is another process's to have finished, not one to run again.
    claimed = sql.claim(conn, spec.run_id, owner, lease_seconds, dead, row.status, attempt_events)
    if claimed is None:
        expires = row.lease_expires_at or time.time()
        raise errors.RunLeasedError(
            run_id=spec.run_id, holder=holder, lease_expires_in=max(0.0, expires - time.time())
        )
    run, entries, last_event = claimed
    return run, entries, last_event, attempt[-1]


class LocalRunSession:
    """A run's connection: every write is one committed transaction, one at a time."""

    def __init__(
        self,
        tx: Transactions,
        *,
        on_unreleased: Callable[[str, str, NewEvent | None], None],
        read_cancel: Callable[[], Awaitable[CancelMode | None]],
        record: RunRecord,
        journal: list[JournalRecord],
        read_only: bool,
        owner: str,
        attempt: Attempt | None,
        lease_seconds: float,
        next_journal_seq: int,
        next_event_seq: int,
    ) -> None:
        self._tx = tx
        self._on_unreleased = on_unreleased
        self._read_cancel = read_cancel
        self.cancel_requested: CancelMode | None = record.cancel_requested
        self._settled = read_only  # the outcome is committed, or the lease given back
        self.record = record
        self.journal = journal
        self.read_only = read_only
        self._owner = owner
        self._attempt = attempt  # None for a finished run: read only, no attempt
        self._lease_seconds = lease_seconds
        self._journal_seq = next_journal_seq
        self._event_seq = next_event_seq
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
        self,
        fn: Callable[..., T],
        args: Callable[[], tuple[Any, ...]],
        done: Callable[[T], None],
        *,
        wait: bool = True,
    ) -> None:
        """One write transaction, after every write before it.

        `args` is read when the write runs (the sequence numbers are the session's at that
        moment). When nothing is ahead of it and the database can take it without blocking, it
        runs at once: no task, no lock, and nothing that could interrupt it.
        """
        if not self._lock.locked() and not self._background and self._failure is None:
            outcome = self._tx.call_now(fn, *args())
            if not isinstance(outcome, MustWait):
                done(outcome)
                return

        async def write() -> None:
            done(await self._tx.call(fn, *args()))

        if wait:
            await self._shielded(write)
        else:
            self._in_background(write)

    def _fenced(self, fenced: sql.Fenced) -> tuple[CancelMode | None, int]:
        """What a fenced write found (the cancel request, the seq of its first event); raise
        RunLeasedError if the run was no longer ours."""
        if fenced is None:
            self._lost = True
            raise self._lost_lease()
        self.cancel_requested = fenced[0]
        return fenced

    def _renewed_at(self, started: float) -> Callable[[sql.Fenced], None]:
        def done(fenced: sql.Fenced) -> None:
            self._fenced(fenced)
            self._renewed = max(self._renewed, started)

        return done

    async def check_lease(self) -> None:
        """Raise RunLeasedError if this process may no longer hold the run.

        Free while the lease is fresh (every step and heartbeat renews it); once half of it has
        passed since the last renewal (the process was stalled), one heartbeat asks the
        database, so a holder that lost its run finds out before calling out again.
        """
        if self._lost:
            raise self._lost_lease()
        if time.monotonic() - self._renewed > self._lease_seconds / 2:
            await self.heartbeat()

    async def append(
        self,
        *,
        journal: JournalEntry | None = None,
        events: list[NewEvent] | None = None,
        usage: UsageDelta | None = None,
        wait: bool = True,
    ) -> None:
        new_events = events or []

        def args() -> tuple[Any, ...]:
            return (
                self.run_id,
                self._owner,
                self._lease_seconds,
                self._journal_seq,
                journal,
                self._event_seq,
                new_events,
                usage,
            )

        started = time.monotonic()

        def done(fenced: sql.Fenced) -> None:
            _, first = self._fenced(fenced)
            self._renewed = max(self._renewed, started)
            if journal is not None:
                self._journal_seq += 1
            self._event_seq = first + len(new_events)

        await self._commit(sql.append, args, done, wait=wait)

    async def heartbeat(self) -> None:
        await self._commit(
            sql.heartbeat,
            lambda: (self.run_id, self._owner, self._lease_seconds),
            self._renewed_at(time.monotonic()),
        )

    async def poll_cancel(self) -> CancelMode | None:
        """One primary-key read, beside the session's writes (never queued behind them)."""
        if not self.read_only and not self._settled:
            self.cancel_requested = await self._read_cancel()
        return self.cancel_requested

    async def finish(
        self,
        status: RunStatus,
        *,
        final_output: Any | None = None,
        error: BaseException | None = None,
        calls: Sequence[PendingCall] | None = None,
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
        # escapes, so recording the failure cannot fail the same way.
        message = None if error is None else storable_text(str(error))
        ended = outcome(
            status, final_output=final_output, error_type=error_type, error=message, calls=calls
        )
        event = NewEvent(ended.TYPE, ended.to_payload())
        new_events = [self._ended(REASONS[ended.STATUS]), event]

        def args() -> tuple[Any, ...]:
            return (
                self.run_id,
                self._owner,
                self._event_seq,
                new_events,
                status,
                final_output,
                error_type,
                message,
            )

        def done(fenced: sql.Fenced) -> None:
            _, first = self._fenced(fenced)
            self._event_seq = first + len(new_events)
            self._settled = True

        await self._commit(sql.finish, args, done)

    def _ended(self, reason: EndReason) -> NewEvent:
        assert self._attempt is not None, "a finished run's session writes nothing"
        return self._attempt.ended(reason, ended_at=time.time())

    async def release(self) -> None:
        """Give the lease up: the attempt ends "interrupted" (Ctrl-C, a cancelled task or
        stream), and the run is resumable at once."""
        ended = self._ended("interrupted")

        def done(_: None) -> None:
            self._settled = True
            self._event_seq += 1

        await self._commit(sql.release, lambda: (self.run_id, self._owner, ended), done)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            # The session ends only once every queued write is done.
            while self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            if not self._settled and not self._lost:
                await self._give_back_lease()
            retire(self._owner)  # from now on this process knows the execution is over
            await self._tx.close()

    async def _give_back_lease(self) -> None:
        """The outcome could not be recorded (a failed write): leave the run resumable by giving
        its lease back now, or, if the database still fails, as soon as it works again."""
        ended = self._ended("interrupted")
        try:
            await self._tx.call(sql.release, self.run_id, self._owner, ended)
        except Exception:
            self._on_unreleased(self.run_id, self._owner, ended)
            log.warning(
                "run %s keeps its lease until the database works again", self.run_id, exc_info=True
            )
