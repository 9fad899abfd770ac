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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, make_url

from .. import lazy_errors as errors
from ..attempts import Attempt, next_number, unended
from ..engine import LATENCY_BUCKETS, EventFeed, Measures
from ..events import AttemptStarted, CancelRequested, RunQueued, parse
from ..names import (
    check_agent_name,
    check_run_id,
    check_session_id,
    check_text,
    check_write_key,
)
from ..owner import current_owner, owner_is_dead, requester, retire
from ..records import (
    CANCEL_MODES,
    DEFAULT_QUEUE,
    MAX_STORED_INT,
    Approval,
    CancelMode,
    EventRecord,
    JournalRecord,
    NewEvent,
    Requester,
    RunRecord,
    RunSpec,
    RunStatus,
    Snapshot,
    TaskLease,
    TaskRecord,
    TaskResult,
    TaskSpec,
    check_claim_limit,
    check_listing,
    check_status,
    choose_claimable,
    read_run_cursor,
    settled_by,
)
from ..serde import session_item_text, storable_text
from ..session import Fenced, JournaledSession, MustWait, say_opened
from ..writes import Opened, Release, Write
from . import approvals as approvals_sql
from . import conversations, fork_sql, sql
from .database import (
    DEFAULT_DIR,
    DEFAULT_FILE,
    ENV_DATABASE_URL,
    Database,
    Transactions,
    describe,
    locate,
)
from .failures import Link, link_failure
from .location import passed_over
from .settings import Durability, StoreSettings

if TYPE_CHECKING:  # imported where PostgreSQL is used
    from .pg_listen import PgListener

__all__ = ["LocalEngine", "LocalRunSession", "LocalWriter"]

log = logging.getLogger("runplane_durable")


class LocalEngine:
    """Engine on a database URL (default: the nearest `.runplane/runplane.db` from the working
    directory up, else a new one under `.runplane/` in it; see `location.py`).

    `pool_size`, `timeout`, `durability` and `retry_seconds` default to RUNPLANE_DB_POOL_SIZE,
    RUNPLANE_DB_TIMEOUT, RUNPLANE_DURABILITY and RUNPLANE_DATABASE_RETRY_SECONDS (see
    `StoreSettings`). `read_only=True` is for looking at runs: the
    database must exist, and nothing is created or written (no file, directory or schema).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int | None = None,
        timeout: float | None = None,
        durability: Durability | None = None,
        retry_seconds: float | None = None,
        read_only: bool = False,
    ) -> None:
        self.location = locate(url)
        self.url = self.location.url
        self.read_only = read_only
        self.settings = StoreSettings.from_env(
            pool_size=pool_size, timeout=timeout, durability=durability, retry_seconds=retry_seconds
        )
        self._db: Database | None = None
        # Leases this process could not give back (the database failed), by run; given back by
        # the next transaction that works.
        self._unreleased: dict[str, Release] = {}
        self._listener: PgListener | None = None

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

    async def open_run(self, spec: RunSpec, *, lease_seconds: float) -> LocalRunSession:
        self._refuse_read_only()
        owner = current_owner()
        try:
            opened = await self.open_for(spec, owner=owner, lease_seconds=lease_seconds)
        except BaseException:
            retire(owner)
            raise
        say_opened(spec, opened, describe(self.url))
        writer = LocalWriter(await self.database.transactions(), self._unreleased, self.database)
        return JournaledSession(writer, opened, owner=owner, lease_seconds=lease_seconds)

    def _refuse_read_only(self, what: str = "runs execute") -> None:
        if self.read_only:
            raise errors.DatabaseError(
                f"this LocalEngine opened the {describe(self.url)} read-only (read_only=True); "
                f"{what} on an engine made without it.",
                database=describe(self.url),
            )

    async def _release_left_over(self, tx: Transactions) -> None:
        for run_id, release in list(self._unreleased.items()):
            try:
                fn, args = sql.write_call(release)
                await tx.call(fn, *args)
            except errors.DatabaseError:
                log.warning("run %s still holds a lease this process could not give back", run_id)
                return
            self._unreleased.pop(run_id, None)
            log.info("gave back the lease of run %s after the database recovered", run_id)

    # -- serving sessions (`session.SessionHost`): this process's own, and a server's clients' --

    async def open_for(
        self,
        spec: RunSpec,
        *,
        owner: str,
        lease_seconds: float,
        dead_holder: str | None = None,
    ) -> Opened:
        """Create or claim the run for lease holder `owner` (see `SessionHost.open_for`)."""
        self._refuse_read_only()
        _check_spec(spec)
        tx = await self.database.transactions()
        try:
            await self._release_left_over(tx)
            # A new run is one insert, with its first attempt's event (on SQLite, on the loop's
            # thread when the file is free).
            first = Attempt(1, owner)
            started = first.started(journal=[], lease_seconds=lease_seconds, now=time.time())
            new = await tx.call(sql.create_run, spec, owner, lease_seconds, started)
            if new is not None:
                return Opened(new, [], 1, 1, 2, created=True)
            # one hop to the database for the whole claim, not one per statement
            claimed = await tx.call(_claim_sync, spec, owner, lease_seconds, dead_holder)
            if isinstance(claimed, RunRecord):  # a pending cancel, carried out now
                raise errors.RunCancelledError(run_id=spec.run_id)
            return claimed
        finally:
            await tx.close()

    async def apply(self, write: Write, *, retried: bool = False) -> Fenced:
        """Apply one session write for a client (see `SessionHost.apply`). A retried one is
        first looked for: if it committed already it is not applied again, and if applying it
        fails it is looked for once more (the first request may have committed meanwhile)."""
        self._refuse_read_only()
        tx = await self.database.transactions()
        try:
            writer = LocalWriter(tx, self._unreleased, self.database)
            return await (writer.write_again(write) if retried else writer.write(write))
        finally:
            await tx.close()

    async def cancel_requested(self, run_id: str) -> CancelMode | None:
        """The run's pending stop request: one primary-key read, beside any session's writes."""
        return await self.database.call(sql.cancel_requested, check_run_id(run_id))

    async def enqueue_run(self, spec: RunSpec) -> RunRecord:
        self._refuse_read_only("runs are started")
        _check_spec(spec)
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
        free, held_here = await self.claim_candidates(
            agent_refs=agent_refs,
            agent_names=agent_names,
            queue=queue,
            limit=limit,
            host=socket.gethostname(),
        )
        return choose_claimable(free, held_here, limit=limit, is_dead=owner_is_dead)

    async def claim_candidates(
        self,
        *,
        agent_refs: Sequence[str],
        agent_names: Sequence[str],
        queue: str,
        limit: int,
        host: str,
    ) -> tuple[list[RunRecord], list[RunRecord]]:
        """What `claimable_runs` chooses from: the runs free to claim (orphaned `running`
        ones, then `queued` ones), and the `running` ones held under a live lease by a process
        of `host`, which only that host can tell dead (`records.choose_claimable`). A server
        answers it for a client's host (`RemoteEngine.claimable_runs`)."""
        check_claim_limit(limit)
        return await self.database.call(
            sql.claimable_runs, list(agent_refs), list(agent_names), queue, limit, f"{host}:"
        )

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
        check_listing(limit=limit, created_after=created_after, created_before=created_before)
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
            raise _task_lost(lease, await self.get_task(lease.task_id))

    async def complete_task(
        self, lease: TaskLease, result: TaskResult, *, sent_before: bool = False
    ) -> TaskRecord:
        """See `Engine.complete_task`. `sent_before`: this result may have been recorded
        already (a request sent again after its answer was lost): if the task is settled by
        this very attempt with this result, it is that task, not a lost lease."""
        return await self._settle_task(
            sql.complete_task,
            lease,
            result,
            lambda now: settled_by(now, lease) and now.result == result,
            sent_before,
        )

    async def fail_task(
        self, lease: TaskLease, error: str, *, sent_before: bool = False
    ) -> TaskRecord:
        """See `Engine.fail_task`; `sent_before` as for `complete_task`."""
        error = storable_text(error)
        ended = f"attempt {lease.attempt}: {error}"  # as sql.fail_task stores it
        return await self._settle_task(
            sql.fail_task,
            lease,
            error,
            lambda now: settled_by(now, lease) and now.error == ended,
            sent_before,
        )

    async def _settle_task(
        self,
        fn: Callable[[Connection, TaskLease, Any], TaskRecord | None],
        lease: TaskLease,
        value: Any,
        settled: Callable[[TaskRecord], bool],
        sent_before: bool,
    ) -> TaskRecord:
        """A task's fenced result or failure. A link to the database that died mid-statement
        leaves it unknown whether it committed: made again (the fence refuses a second one),
        and a refusal then is recognised as the first write's success when `settled` says the
        stored task is what it wrote."""
        deadline = time.monotonic() + self.database.settings.retry_seconds
        while True:
            try:
                task = await self.database.call(fn, lease, value)
                break
            except errors.DatabaseError as exc:
                if link_failure(exc) is not Link.UNKNOWN or time.monotonic() >= deadline:
                    raise
                sent_before = True
        if task is not None:
            return task
        now = await self.get_task(lease.task_id)  # TaskNotFoundError if it never existed
        if sent_before and settled(now):
            return now  # the first write committed; its answer was lost
        raise _task_lost(lease, now)

    async def cancel_run(
        self, run_id: str, *, mode: CancelMode = "immediate", by: Requester | None = None
    ) -> RunRecord:
        """See `Engine.cancel_run`: one transaction, by this process, on behalf of `by` (else
        of this process: its host, pid and user go into the `cancel_requested` event)."""
        if mode not in CANCEL_MODES:
            modes = ", ".join(CANCEL_MODES)
            raise ValueError(f"{mode!r} is not a cancel mode; use one of: {modes}")
        self._refuse_read_only("runs are cancelled")
        asker = by if by is not None else Requester(*requester())
        asked = CancelRequested(mode, asker.host, asker.pid, asker.user, time.time(), via=asker.via)
        deadline = time.monotonic() + self.database.settings.retry_seconds
        while True:
            try:
                found = await self.database.call(
                    sql.cancel_run,
                    check_run_id(run_id),
                    mode,
                    asked,
                    owner_is_dead,
                    _attempt_end,
                )
                break
            except errors.DatabaseError as exc:
                if link_failure(exc) is not Link.UNKNOWN or time.monotonic() >= deadline:
                    raise
            # The link died mid-statement: the request may have committed. Asked already (this
            # request, or one at least as strong), the run is as the caller wants it; else the
            # request is made again.
            try:
                now = await self.get_run(run_id)
            except errors.DatabaseError as exc:
                if link_failure(exc) is None or time.monotonic() >= deadline:
                    raise
                continue
            if now.status == "cancelled" or now.cancel_requested in ("immediate", mode):
                return now
        if found is None:
            raise errors.RunNotFoundError(run_id=run_id, database=describe(self.url))
        if found.status in ("completed", "failed"):
            raise errors.RunFinishedError(run_id=run_id, status=found.status)
        return found

    # -- approvals (local/approvals.py: the SQL and the seals) ---------------------------------

    async def list_approvals(self, run_id: str) -> list[Approval]:
        found = await self.database.call(approvals_sql.list_approvals, check_run_id(run_id))
        if found is None:
            raise errors.RunNotFoundError(run_id=run_id, database=describe(self.url))
        return found

    async def decide(
        self,
        run_id: str,
        call_id: str | None,
        *,
        approve: bool,
        always: bool = False,
        message: str | None = None,
        by: str | None = None,
    ) -> tuple[RunRecord, list[Approval]]:
        """See `Engine.decide`; `by` defaults to this process's user and host."""
        self._refuse_read_only("approvals are decided")
        if call_id is not None:
            check_text(call_id, "a call id")  # no NUL, no lone surrogate: no call has one
        if by is None:
            host, _, user = requester()
            by = f"{user}@{host}" if user else host
        try:
            return await self.database.call(
                approvals_sql.decide,
                check_run_id(run_id),
                call_id,
                bool(approve),
                bool(always),
                message,
                by,
            )
        except errors.RunNotFoundError:
            raise errors.RunNotFoundError(run_id=run_id, database=describe(self.url)) from None

    async def load_snapshot(self, run_id: str) -> Snapshot | None:
        return await self.database.call(approvals_sql.load_snapshot, check_run_id(run_id))

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

    async def fork_run(
        self, run_id: str, *, at: int, new_run_id: str, queue: str | None = DEFAULT_QUEUE
    ) -> RunRecord:
        """See `Engine.fork_run`."""
        self._refuse_read_only("runs are forked")
        check_run_id(new_run_id)
        if queue is not None:
            check_text(queue, "queue")
        done = await self.database.call(
            fork_sql.fork_run, check_run_id(run_id), at, new_run_id, queue
        )
        if done is None:
            raise errors.RunNotFoundError(run_id=run_id, database=describe(self.url))
        return done[1]

    # -- durable sessions (local/conversations.py) ---------------------------------------------

    async def session_items(self, session_id: str, *, limit: int | None = None) -> list[Any]:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a count of items (0 or more) or None, got {limit!r}")
        return await self.database.call(conversations.items, check_session_id(session_id), limit)

    async def add_session_items(
        self, session_id: str, items: Sequence[Any], *, write_key: str
    ) -> bool:
        self._refuse_read_only("sessions are written")
        texts = [session_item_text(item) for item in items]
        return await self.database.call(
            conversations.add_items,
            check_session_id(session_id),
            texts,
            check_write_key(write_key),
        )

    async def pop_session_item(self, session_id: str) -> Any | None:
        self._refuse_read_only("sessions are written")
        return await self.database.call(conversations.pop_item, check_session_id(session_id))

    async def clear_session(self, session_id: str) -> None:
        self._refuse_read_only("sessions are written")
        await self.database.call(conversations.clear, check_session_id(session_id))

    async def event_feed(self) -> EventFeed | None:
        """See `engine.Notifying`: on PostgreSQL, this engine's one listening connection."""
        if make_url(self.url).get_backend_name() != "postgresql":
            return None
        if self._listener is None or self._listener.loop is not asyncio.get_running_loop():
            from .pg_listen import PgListener

            self._listener = PgListener(self.url)
            self._listener.start()
        return self._listener

    async def dispose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and listener.loop is asyncio.get_running_loop():
            await listener.close()
        if self._db is not None:
            if self._unreleased:
                with contextlib.suppress(errors.DatabaseError):
                    await self._release_left_over(await self._db.transactions())
            await self._db.dispose()


def _check_task_spec(spec: TaskSpec) -> None:
    """A task the engine can retry as its spec says; else a ValueError saying what to change."""
    if isinstance(spec.max_attempts, bool) or not isinstance(spec.max_attempts, int):
        raise ValueError(f"max_attempts is a whole number, got {spec.max_attempts!r}")
    if not 1 <= spec.max_attempts <= MAX_STORED_INT:
        raise ValueError(
            f"max_attempts must be at least 1 (and at most {MAX_STORED_INT}), got "
            f"{spec.max_attempts}"
        )
    if not (math.isfinite(spec.retry_delay) and spec.retry_delay >= 0):
        raise ValueError(f"retry_delay must be 0 or more seconds, got {spec.retry_delay}")
    if spec.timeout is not None and not (math.isfinite(spec.timeout) and spec.timeout > 0):
        raise ValueError(f"timeout must be positive seconds or None, got {spec.timeout}")
    if not spec.queue:
        raise ValueError("a task's queue is a non-empty name")
    for what in ("queue", "tool_name", "call_key", "call_id"):
        check_text(getattr(spec, what), f"task {what}")


def _check_spec(spec: RunSpec) -> None:
    """A run this engine can store: its id and agent name fit every database (a client's
    spec, through a server, is checked as the runtime checks its own)."""
    check_run_id(spec.run_id)
    check_agent_name(spec.agent_name)
    check_text(spec.input_fingerprint, "input fingerprint")
    for what, value in (("agent reference", spec.agent_ref), ("queue", spec.queue)):
        if value is not None:
            check_text(value, what)


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
    conn: Connection, spec: RunSpec, owner: str, lease_seconds: float, dead_holder: str | None
) -> Opened | RunRecord:
    """Claim an existing run, and read what a replay needs, in one transaction function; or,
    for a run asked to stop that no process executes any more, record it cancelled and return
    it.

    The claim logs the new attempt's start, after the end of the previous attempt if that one
    never wrote it (its process was killed, or stalled past its lease), in the claim's own
    transaction. A finished run is only read: replaying it is no attempt. A run `owner` holds
    already was claimed by this very opening (a request retried after its answer was lost):
    it is read, not claimed twice. `dead_holder` is a holder the caller knows is dead.
    """
    row = sql.get_run(conn, spec.run_id)
    if row is None:  # deleted between the insert that found it and now: a new run after all
        raise errors.RunNotFoundError(run_id=spec.run_id, vanished=True)
    _check_same_run(spec, row)
    if row.status == "cancelled":
        raise errors.RunCancelledError(run_id=spec.run_id)
    if spec.claim_status is not None and row.status != spec.claim_status and row.owner != owner:
        # A worker's claim of a run listed in another status: finished (or taken up) since.
        raise errors.RunLeasedError(run_id=spec.run_id, holder=row.owner, status=row.status)
    if row.status == "completed":
        entries = sql.read_journal(conn, spec.run_id)
        last = sql.max_event_seq(conn, spec.run_id)
        return Opened(row, entries, None, _next(entries), last + 1, created=False)
    if row.owner == owner:
        return _opened_already(conn, row, owner)

    def is_dead(name: str) -> bool:
        return name == dead_holder or owner_is_dead(name)

    if row.cancel_requested is not None and not sql.executing(row, time.time(), is_dead):
        # Asked to stop while its holder ran it, and the holder stopped without carrying it
        # out (killed, or interrupted): carried out now, instead of running it again.
        cancelled = sql.cancel_run(conn, spec.run_id, None, None, is_dead, _attempt_end)
        if cancelled is not None and cancelled.status == "cancelled":
            return cancelled
        row = sql.record(sql.get_run_row(conn, spec.run_id))
    holder = row.owner

    dead = holder if holder is not None and is_dead(holder) else None
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
        previous = unended(last, row, now, is_dead=is_dead)
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
    return Opened(run, entries, attempt[-1].number, _next(entries), last_event + 1, created=False)


def _next(entries: list[JournalRecord]) -> int:
    return (entries[-1].seq + 1) if entries else 1


def _opened_already(conn: Connection, row: RunRecord, owner: str) -> Opened:
    """The opening `owner` made, read back: its attempt is the last one started."""
    entries = sql.read_journal(conn, row.id)
    last = sql.max_event_seq(conn, row.id)
    started = sql.last_attempt_started(conn, row.id)
    parsed = None if started is None else parse(NewEvent(AttemptStarted.TYPE, started))
    number = parsed.attempt if isinstance(parsed, AttemptStarted) else None
    first = number in (None, 1) and not entries
    return Opened(row, entries, number or 1, _next(entries), last + 1, created=first)


class LocalWriter:
    """A session's writes on this process's database: each one transaction (see `sql.py`)."""

    def __init__(
        self, tx: Transactions, unreleased: dict[str, Release], database: Database
    ) -> None:
        self._tx = tx
        self._unreleased = unreleased
        self._database = database

    def write_now(self, write: Write) -> Fenced | MustWait:
        fn, args = sql.write_call(write)
        outcome = self._tx.call_now(fn, *args)
        return outcome if isinstance(outcome, MustWait) else _found(write, outcome)

    async def write(self, write: Write) -> Fenced:
        fn, args = sql.write_call(write)
        try:
            return _found(write, await self._tx.call(fn, *args))
        except errors.DatabaseError as exc:
            if link_failure(exc) is not Link.UNKNOWN:
                raise
        # The link died mid-write (the database restarted): it may have committed. Made again
        # as a server makes a client's retried write: recognised if it did, else written.
        return await self.write_again(write)

    async def write_again(self, write: Write) -> Fenced:
        """A write that may have committed already (its answer was lost): looked for first,
        by its holder and seqs (`sql.committed`), and applied only if it is not there; looked
        for once more if applying it fails (the first one may have committed meanwhile). Each
        lookup and write waits for a database that cannot be reached, within its bound."""
        deadline = time.monotonic() + self._database.settings.retry_seconds
        fn, args = sql.write_call(write)
        while True:
            if (found := await self._database.call(sql.committed, write)) is not None:
                return found
            try:
                return _found(write, await self._tx.call(fn, *args))
            except errors.DatabaseError as exc:
                link = link_failure(exc)
                if link is Link.UNKNOWN and time.monotonic() < deadline:
                    continue
                if link is None and (found := await self._database.call(sql.committed, write)):
                    return found
                raise

    async def cancel_requested(self, run_id: str) -> CancelMode | None:
        # On the database's pool, beside the session's own connection: never queued behind its
        # writes.
        return await self._database.call(sql.cancel_requested, run_id)

    def unreleased(self, release: Release) -> None:
        self._unreleased[release.run_id] = release

    async def close(self) -> None:
        await self._tx.close()


def _task_lost(lease: TaskLease, now: TaskRecord) -> errors.TaskLeaseLostError:
    """Why a write under `lease` found the task (`now`, as stored) no longer the attempt's."""
    return errors.TaskLeaseLostError(
        task_id=lease.task_id, attempt=lease.attempt, status=now.status, attempts=now.attempts
    )


def _found(write: Write, found: Fenced) -> Fenced:
    """What a write's transaction found, as a session reads it: the fenced writes say it
    themselves (`sql.Fenced`); a release is never refused, and reads no stop request."""
    return (None, 0) if isinstance(write, Release) else found


# The session LocalEngine.open_run gives: the one implementation, writing through LocalWriter.
LocalRunSession = JournaledSession
