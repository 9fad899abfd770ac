"""The engine contract: what the durable runtime asks of the place its runs are kept.

`LocalEngine` keeps runs in a database this process opens; a `RemoteEngine` will keep them
behind a server, over HTTP. Both implement exactly this contract, and the runtime knows only
it. Everything that crosses it is a record of `records.py` (each has a JSON form) or a durable
error of `errors.py` (each has a wire form), so every method maps onto one request and response.
tests/durable/engine/test_engine_contract.py runs the same tests against every engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .events import PendingCall
from .records import (
    Approval,
    CancelMode,
    EventRecord,
    JournalEntry,
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
    UsageDelta,
)

__all__ = [
    "LATENCY_BUCKETS",
    "Engine",
    "EventFeed",
    "EventWatch",
    "Latencies",
    "Measured",
    "Measures",
    "Notifying",
    "RunSession",
    "open_engine",
]


class RunSession(Protocol):
    """One execution's hold on one run: the run's journal as it was opened, and (unless
    `read_only`) its lease.

    While the session holds the lease, no other session can write to the run: each write is
    fenced by the lease, and one that finds the lease lost writes nothing and raises
    `RunLeasedError`. Writes commit one at a time, in the order they were made. A session that
    is `read_only` (its run was completed when opened) holds no lease and writes nothing: the
    runtime replays it from `journal` alone.
    """

    record: RunRecord
    """The run as it was when the session opened it (status, input, options)."""
    journal: list[JournalRecord]
    """The run's whole journal when opened, in `seq` order: what a replay returns."""
    read_only: bool
    """The run was completed: nothing may be written, and no lease is held."""
    cancel_requested: CancelMode | None
    """A stop asked for from another process (`Engine.cancel_run`), as this session last saw
    it: every append and heartbeat learns it at no extra cost, `poll_cancel` reads it. None
    while no one asked."""

    async def append(
        self,
        *,
        journal: JournalEntry | None = None,
        events: list[NewEvent] | None = None,
        usage: UsageDelta | None = None,
        wait: bool = True,
    ) -> None:
        """Commit one step: at most one journal entry, any events, a usage delta, all or none.

        The entry gets the next journal seq, the events the next event seqs; the lease is
        renewed. `wait=False` lets the caller go on before the step is durable: the engine may
        return once the step is queued behind earlier writes. Order is kept either way: every
        later write of this session (append, finish, release) commits after it, and if it
        fails, that later write raises its failure and commits nothing. So nothing that
        depended on the step is durable before the step is.
        """

    async def heartbeat(self) -> None:
        """Renew the lease; raise RunLeasedError if another execution took the run over."""

    async def poll_cancel(self, *, fresh_within: float = 0.0) -> CancelMode | None:
        """Whether a stop was asked for (`Engine.cancel_run`), in one cheap read; also sets
        `cancel_requested`. The runtime calls it about once a second while the run executes
        (RUNPLANE_CANCEL_POLL_SECONDS), and stops the run when it says so. With
        `fresh_within`, no read is made when one of the session's writes was answered (and so
        read the request) within that many seconds: a run stepping often asks nothing more."""

    async def check_lease(self) -> None:
        """Raise RunLeasedError if this session may no longer hold the run; call it before any
        live call out (a model call, a tool). Free while the lease is fresh (renewed within
        half of its length); past that it asks the engine, as `heartbeat` does."""

    async def finish(
        self,
        status: RunStatus,
        *,
        final_output: Any | None = None,
        error: BaseException | None = None,
        calls: Sequence[PendingCall] | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        """Record the run's outcome and give up the lease; the attempt ends with it.

        `status` is "completed" (with `final_output`, JSON data), "failed" (with `error`,
        recorded as its qualified type name and message), "cancelled", or "awaiting_approval"
        (with `calls`, the tool calls awaiting approval). "running" is refused (ValueError).
        Logs the attempt's end and the outcome's event (`events.outcome`). A run awaiting
        approval may be stored with `snapshot` (the state it resumes from and the calls it
        waits on): the engine seals it, the run keeps no finished time, and one
        `approval_requested` event per call comes between the attempt's end and the outcome.
        """

    async def release(self) -> None:
        """Give up the lease and leave the run resumable at once (the process is stopping:
        Ctrl-C, a cancelled task); the attempt ends "interrupted"."""

    async def close(self) -> None:
        """End the session once its queued writes are done; give the lease back if neither
        `finish` nor `release` did (a failed write). Idempotent."""


class Engine(Protocol):
    """Where runs are kept: opens runs for execution, and reads them for anyone looking."""

    async def open_run(self, spec: RunSpec, *, lease_seconds: float) -> RunSession:
        """Open the run `spec` names, creating it if there is none.

        A new run starts its first attempt, under a lease of `lease_seconds`, and is stored with
        `spec.agent_ref` and `spec.queue`. An existing one (a `queued` one too) must have been
        started with the same agent and input (else RunInputMismatchError): it is claimed for a
        new attempt if its lease is free, expired or held by a dead process (else
        RunLeasedError), or opened `read_only` if it completed; a cancelled run raises
        RunCancelledError, and so does one whose cancel request (`cancel_run`) its last holder
        never carried out: it is recorded cancelled first.
        """

    async def enqueue_run(self, spec: RunSpec) -> RunRecord:
        """Create the run `spec` names as `queued` on `spec.queue` (None: "default"), with its
        `spec.agent_ref`, for a worker to start: nothing executes it here, no lease is taken.

        Its first event is `run_queued`. An id that exists already with the same agent and input
        is that run, as it is now (starting it twice starts it once); with another agent or
        input, RunInputMismatchError.
        """

    async def claimable_runs(
        self,
        *,
        agent_refs: Sequence[str],
        agent_names: Sequence[str],
        queue: str,
        limit: int,
    ) -> list[RunRecord]:
        """Runs a worker serving `queue` may claim now (with `open_run`), at most `limit`:
        `running` ones on the queue whose lease is free, expired or held by a process known
        dead, and `awaiting_approval` ones whose every call is decided, oldest first, then
        `queued` ones on it, oldest first.

        Only runs whose agent the worker knows: an `agent_ref` in `agent_refs`, or no
        `agent_ref` and an `agent_name` in `agent_names`. A run listed here may be claimed by
        another worker first: `open_run` decides (RunLeasedError for the one that lost).
        """

    async def get_run(self, run_id: str) -> RunRecord:
        """The run as stored now; RunNotFoundError if there is none."""

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
        """Runs, newest first (by `created_at`, ties by id, both descending): at most `limit`
        (None: all), only those in `status`, of starting agent `agent`, and created at or after
        `created_after` and strictly before `created_before`, when given (so windows
        [a, b), [b, c) never share a run).

        `cursor` (`records.run_cursor(r)` of the last run of a page) lists the runs after `r`
        in this order: paging with it yields every run once, even while runs are created.
        ValueError, saying what is allowed, for a status outside `RunStatus`, a negative
        `limit`, or a cursor `run_cursor` did not make.
        """

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """The run's events with seq greater than `after`, in seq order, at most `limit`.
        An unknown run has none."""

    async def read_journal(self, run_id: str) -> list[JournalRecord]:
        """The run's journal, in seq order (empty for an unknown run)."""

    # -- remote tool tasks: a run enqueues a call, workers claim it under a lease ----------------

    async def enqueue_task(self, spec: TaskSpec) -> TaskRecord:
        """The task for `spec`'s (run_id, call_key): created "pending" (available at once), or,
        if the run enqueued this call before (a resumed run), the one already there, as it is
        now. ValueError for max_attempts below 1, a negative retry_delay or a timeout not
        above 0."""

    async def get_task(self, task_id: str) -> TaskRecord:
        """The task as stored now; TaskNotFoundError if there is none."""

    async def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """The run's tasks, oldest first (empty for an unknown run)."""

    async def claim_task(
        self, *, queue: str, tools: Sequence[str], owner: str, lease_seconds: float
    ) -> TaskRecord | None:
        """Claim the next task on `queue` for one of `tools` for a new attempt held by `owner`
        (the worker's holder name, `owner.current_owner()`), under a lease of `lease_seconds`;
        None when none is available.

        A pending task is available from its `available_at`, oldest first. Claims by several
        workers at once never get the same task. First, each running task of the queue whose
        attempt was abandoned (its lease expired, or its holder is known dead) is settled as
        `fail_task` does. The claimed task comes back "running", its `attempts` the new
        attempt's number: `record.held(lease_seconds)` is that attempt's lease.
        """

    async def heartbeat_task(self, lease: TaskLease) -> None:
        """Renew the attempt's lease; TaskLeaseLostError if it no longer holds the task."""

    async def complete_task(self, lease: TaskLease, result: TaskResult) -> TaskRecord:
        """Record the attempt's result, once: the task is "completed" and gives no more
        attempts. TaskLeaseLostError (nothing recorded) if the attempt no longer holds it."""

    async def fail_task(self, lease: TaskLease, error: str) -> TaskRecord:
        """End the attempt without a result (`error` says why: its worker died, it timed out,
        the context could not be rebuilt): the task is "pending" again, available after its
        retry delay for this attempt (`records.retry_delay`), or "failed" with `error` if it
        was the last attempt. TaskLeaseLostError (nothing written) if the attempt no longer
        holds it. Anyone who finds an attempt abandoned may end it so."""

    async def cancel_run(
        self, run_id: str, *, mode: CancelMode = "immediate", by: Requester | None = None
    ) -> RunRecord:
        """Ask run `run_id` to stop, from any process; returns the run as stored after asking.

        A run no process executes (queued, orphaned or stopped, awaiting approval) is recorded
        "cancelled" at once: its events get a `cancel_requested` event saying who asked (`by`,
        else the host, pid and user of the process asking) and the mode, the end of an attempt
        whose process died, and `run_cancelled`. An executing run keeps its status: its
        `cancel_requested` is set (an "immediate" request is never weakened to "after_turn")
        with the `cancel_requested` event, and its holder, which learns of it within about a
        second, stops it ("immediate": at once; "after_turn": before its next model call) and
        records it cancelled; a holder that stops without doing so leaves the request pending,
        and the next opening of the run carries it out. A cancelled run is final (`open_run`
        raises RunCancelledError); cancelling it again returns it unchanged. A completed or
        failed run raises RunFinishedError; an unknown one RunNotFoundError; a mode other than
        the two a ValueError.
        """

    async def prune(self, *, finished_before: float) -> int:
        """Delete the runs that finished (completed, failed or cancelled) before
        `finished_before` (seconds since the epoch), with their journal, events and tool tasks;
        returns how many runs. Deletes in batches of bounded size, each its own transaction, so
        a large prune never holds the database for long; runs still running are never touched.
        """

    # -- approvals: the calls a run waits on, decided from any process ---------------------------

    async def list_approvals(self, run_id: str) -> list[Approval]:
        """The calls run `run_id` stopped for, with their decisions, in the order requested;
        empty for a run that never waited. RunNotFoundError for an unknown run."""

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
        """Decide call `call_id` of run `run_id` (None: every pending call), recording who
        decided (`by`) and an `approval_decided` event per call decided; the run and all its
        approvals after. Deciding a call the same way again writes nothing (idempotent).
        ApprovalNotFoundError for a call the run never waited for (or None with none pending),
        ApprovalConflictError for a call decided the other way or a run no longer awaiting
        approval (RunFinishedError for a completed or failed one), RunNotFoundError."""

    async def load_snapshot(self, run_id: str) -> Snapshot | None:
        """The state run `run_id` last stopped in for approval, its seal verified by the engine
        (None: it never stopped so); RunStateInvalidError if the seal or a decision's seal does
        not verify. The approvals are those stored now, with their decisions."""

    def describe(self) -> str:
        """Where the runs are kept, for people: a database and its path or host, a server's
        URL; never a password."""

    async def dispose(self) -> None:
        """Release what the engine holds (connections, clients)."""

    # -- forks: a new run sharing another's journal up to a step ---------------------------------

    async def fork_run(
        self, run_id: str, *, at: int, new_run_id: str, queue: str | None = "default"
    ) -> RunRecord:
        """Create run `new_run_id` as a fork of run `run_id` at step `at` (the event seq
        `runplane runs show` prints, 1 to the run's last): the same agent, `agent_ref`, input
        and options, plus the option `forked_from` {"run_id", "at"}, and a copy of the journal
        entries whose steps come before `at` (`forks.fork_of`), in one transaction. The fork is
        `queued` on `queue` for a worker (None: on no queue, for the caller to open with
        `open_run`); its usage counts start at zero, and its first events are `run_forked` (and
        `run_queued` with a queue). Opened, it replays the copied entries and goes on live.
        The run forked is not touched.

        The same `new_run_id` again, for the same fork, is that run as it is now; an id that
        names any other run raises RunInputMismatchError. RunNotFoundError for an unknown
        `run_id`, ForkStepError (a ValueError) for a step outside its steps.
        """


# Upper bounds (seconds) of the step latency histogram's buckets: a tool's millisecond to a slow
# model call's minute.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


@dataclass(frozen=True)
class Latencies:
    """A histogram of step latencies: `counts[i]` steps took at most `buckets[i]` seconds
    (cumulative, as Prometheus keeps them), `count` steps in all, `total` seconds in all."""

    buckets: tuple[float, ...]
    counts: tuple[int, ...]
    count: int = 0
    total: float = 0.0


@dataclass(frozen=True)
class Measures:
    """What a store holds now, counted by the database itself (so every server on one database
    reports the same): what `runplane server`'s /metrics serves.

    `runs` by status; `steps` (journal entries) by kind ("model", "tool"); `latency` by kind,
    from the `seconds` each model and tool call's event recorded; `leases` held now (unexpired)
    by what holds them ("run", "task"); `queued_runs` and `queued_tasks` waiting, by queue.
    """

    runs: dict[str, int] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    latency: dict[str, Latencies] = field(default_factory=dict)
    leases: dict[str, int] = field(default_factory=dict)
    queued_runs: dict[str, int] = field(default_factory=dict)
    queued_tasks: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class Measured(Protocol):
    """An engine that can count what its store holds (`LocalEngine`: it has the database). Not
    part of `Engine`: a client of a server asks the server's /metrics instead."""

    async def measure(self, *, buckets: Sequence[float] = LATENCY_BUCKETS) -> Measures:
        """The store's `Measures` now, the latencies in `buckets` (upper bounds, ascending)."""


class EventWatch(Protocol):
    """Wake-ups for one run's new events, from `EventFeed.watch`."""

    async def wait(self, timeout: float) -> bool:
        """Return True once the store said the run got events since the watch began or since
        the last `wait` returned (one said while the caller was reading is kept for the next
        `wait`), False after `timeout` seconds without. A hint only: read the events by seq."""


class EventFeed(Protocol):
    """The store's word that runs got events (PostgreSQL's NOTIFY), in this process: one
    listener fanned out to every watch. It may miss some (while it reconnects), so a reader
    waits for it or for a fallback poll, and reads the events from the store either way."""

    def watch(self, run_id: str) -> AbstractContextManager[EventWatch]:
        """Watch `run_id` while the block runs; begin it before the first read."""


@runtime_checkable
class Notifying(Protocol):
    """An engine whose store can say when a run gets events (`LocalEngine`: on PostgreSQL).
    Not part of `Engine`: a server uses it for its event streams, whose clients wait on them."""

    async def event_feed(self) -> EventFeed | None:
        """The engine's feed, its listener started on the running loop on first call (one per
        engine, closed by `dispose`); None where the store cannot notify (SQLite): poll."""


def open_engine(url: str | None = None, *, read_only: bool = False, server: bool = True) -> Engine:
    """The engine for `url`: the one place that chooses one, so the runtime and the CLI never
    name it. `read_only` engines never create or write anything (for commands that look).

    An `http://` or `https://` URL is a runplane server (`RemoteEngine`); any other is a
    database URL or path (`LocalEngine`). Without one: RUNPLANE_SERVER_URL if set, else
    RUNPLANE_DATABASE_URL, else the nearest `.runplane/`. Both variables set at once is an error
    (which one was meant cannot be told); a URL given here wins over both. `server=False` never
    chooses a server (what `runplane server` itself opens).
    """
    import os

    from .local.settings import ENV_DATABASE_URL
    from .remote_engine import ENV_SERVER_URL, RemoteEngine, is_server_url

    if url is None and server:
        from_env = os.environ.get(ENV_SERVER_URL, "").strip()
        if from_env:
            if os.environ.get(ENV_DATABASE_URL, "").strip():
                from . import lazy_errors as errors

                raise errors.DatabaseError(
                    f"both {ENV_SERVER_URL} ({from_env}) and {ENV_DATABASE_URL} are set, so "
                    "where runs go is ambiguous: a program keeps its runs either behind a server "
                    f"or in a database. Unset one ({ENV_DATABASE_URL} belongs to the server's "
                    "environment, `runplane server` reads it)."
                )
            url = from_env
    if url is not None and is_server_url(url):
        if not server:
            raise ValueError(
                f"{url} is a server's URL; `runplane server` serves a database: give its URL or "
                "path with --database"
            )
        return RemoteEngine(url, read_only=read_only)
    from .local.engine import LocalEngine

    return LocalEngine(url, read_only=read_only)
