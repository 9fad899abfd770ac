"""Every statement the engine runs, written once as synchronous SQLAlchemy Core transactions.

The same functions run on SQLite (in a worker thread, the whole transaction in one hop) and on
PostgreSQL (through `AsyncConnection.run_sync` over asyncpg): one code path for both databases.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..engine import Latencies, Measures
from ..events import (
    AttemptEnded,
    AttemptStarted,
    CancelRequested,
    ModelCalled,
    RunCancelled,
    ToolCalled,
)
from ..records import (
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
    retry_delay,
)
from ..serde import dump_json, load_json
from ..session import Fenced
from ..writes import Append, Finish, Heartbeat, Interrupt, Write
from .prepared import Prepared
from .schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    approvals,
    events,
    journal,
    metadata,
    run_states,
    runs,
    schema_info,
    tasks,
)

# The event each kind of journaled step logs, with the step's latency in its `seconds`.
STEP_EVENTS = {"model": ModelCalled.TYPE, "tool": ToolCalled.TYPE}

__all__ = [
    "EVENTS_CHANNEL",
    "READS",
    "USAGE_COLUMNS",
    "WATCH_LOCK_CLASS",
    "RunFilter",
    "append",
    "cancel_requested",
    "cancel_run",
    "claim",
    "claim_task",
    "claimable_runs",
    "committed",
    "complete_task",
    "create_run",
    "create_schema",
    "enqueue_run",
    "enqueue_task",
    "fail_task",
    "finish",
    "get_run",
    "get_task",
    "heartbeat",
    "heartbeat_task",
    "last_attempt_started",
    "list_events",
    "list_runs",
    "list_tasks",
    "log_events",
    "max_event_seq",
    "measure",
    "prune",
    "read_journal",
    "release",
    "schema_version",
    "take_lease",
    "watched",
    "write_call",
]

USAGE_COLUMNS = (
    "model_calls",
    "tool_calls",
    "requests",
    "input_tokens",
    "output_tokens",
    "total_tokens",
)
new_row_names = (
    "id",
    "agent_name",
    "status",
    "input",
    "input_fingerprint",
    "options",
    "created_at",
    "updated_at",
    "owner",
    "lease_expires_at",
    "agent_ref",
    "queue",
    *USAGE_COLUMNS,
)


def _found_version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(schema_info.name):
        return None
    version = conn.execute(sa.select(schema_info.c.version)).scalar_one_or_none()
    return None if version is None else int(version)


def schema_version(conn: Connection) -> int | None:
    """The version a database was written with (None: no runplane schema yet). Writes nothing."""
    version = _found_version(conn)
    conn.rollback()
    return version


def create_schema(conn: Connection, lock: Callable[[Connection], None]) -> int | None:
    """Create what is missing, under `lock` so concurrent creators take turns.

    Returns the version found once the lock was held: a newer one means nothing was created, and
    the caller refuses the database.
    """
    lock(conn)
    version = _found_version(conn)
    if version is not None and version > SCHEMA_VERSION:
        conn.rollback()
        return version
    if version is not None:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS.get(step, ()):
                conn.execute(sa.text(statement))
    metadata.create_all(conn, checkfirst=True)
    from .approvals import ensure_key  # v3: the sealing key, made once with the schema

    ensure_key(conn)
    if version is None:
        conn.execute(schema_info.insert().values(id=1, version=SCHEMA_VERSION))
    elif version < SCHEMA_VERSION:
        conn.execute(schema_info.update().values(version=SCHEMA_VERSION))
    conn.commit()
    return version


# `SELECT *`, not today's column list: a read-only reader of a database an older version wrote
# (it never upgrades one) reads the columns that are there.
def _select_runs() -> sa.Select[Any]:
    return sa.select(sa.text("*")).select_from(runs)


def record(row: Any) -> RunRecord:
    return RunRecord(
        id=row.id,
        agent_name=row.agent_name,
        status=row.status,
        input=load_json(row.input),
        options=load_json(row.options),
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        owner=row.owner,
        lease_expires_at=row.lease_expires_at,
        model_calls=row.model_calls,
        tool_calls=row.tool_calls,
        requests=row.requests,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        total_tokens=row.total_tokens,
        final_output=None if row.final_output is None else load_json(row.final_output),
        error_type=row.error_type,
        error=row.error,
        input_fingerprint=row.input_fingerprint,
        # Columns new in schema 2: a reader of an older database (it never upgrades one) sees none.
        cancel_requested=row._mapping.get("cancel_requested"),
        agent_ref=row._mapping.get("agent_ref"),
        queue=row._mapping.get("queue"),
    )


def new_record(
    spec: RunSpec, owner: str | None, now: float, lease_seconds: float | None
) -> RunRecord:
    """The row `create_run` (or, with no owner, `enqueue_run`) inserts, as a record: a new run
    needs no read after its insert."""
    return RunRecord(
        id=spec.run_id,
        agent_name=spec.agent_name,
        status="running" if owner is not None else "queued",
        input=spec.input,
        options=spec.options,
        created_at=now,
        updated_at=now,
        finished_at=None,
        owner=owner,
        lease_expires_at=None if lease_seconds is None else now + lease_seconds,
        model_calls=0,
        tool_calls=0,
        requests=0,
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        final_output=None,
        error_type=None,
        error=None,
        input_fingerprint=spec.input_fingerprint,
        agent_ref=spec.agent_ref,
        queue=spec.queue,
    )


def new_row(record: RunRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "agent_name": record.agent_name,
        "status": record.status,
        "input": dump_json(record.input),
        "input_fingerprint": record.input_fingerprint,
        "options": dump_json(record.options),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "owner": record.owner,
        "lease_expires_at": record.lease_expires_at,
        "agent_ref": record.agent_ref,
        "queue": record.queue,
        **dict.fromkeys(USAGE_COLUMNS, 0),
    }


_INSERT_RUN = Prepared(runs.insert().values({name: sa.bindparam(name) for name in new_row_names}))


def create_run(
    conn: Connection, spec: RunSpec, owner: str, lease_seconds: float, started: NewEvent
) -> RunRecord | None:
    """Insert the run with its first event (`started`, its first attempt) and return it; None if
    a run with this id already exists."""
    record = new_record(spec, owner, time.time(), lease_seconds)
    try:
        _INSERT_RUN.execute(conn, new_row(record))
        log_events(conn, _event_rows(spec.run_id, 1, [started], record.created_at))
        conn.commit()
    except IntegrityError:
        conn.rollback()
        return None
    return record


def enqueue_run(conn: Connection, spec: RunSpec, queued: NewEvent) -> tuple[bool, RunRecord]:
    """Insert the run as `queued`, with its first event (`queued`); or, if a run with this id
    exists, read it. Returns whether it was created, and the run."""
    new = new_record(spec, None, time.time(), None)
    try:
        _INSERT_RUN.execute(conn, new_row(new))
        log_events(conn, _event_rows(spec.run_id, 1, [queued], new.created_at))
        conn.commit()
    except IntegrityError:
        conn.rollback()
    else:
        return True, new
    row = get_run_row(conn, spec.run_id)
    conn.commit()
    if row is None:  # deleted between the insert that found it and now: try once more
        return enqueue_run(conn, spec, queued)
    return False, record(row)


def claimable_runs(
    conn: Connection,
    agent_refs: list[str],
    agent_names: list[str],
    queue: str,
    limit: int,
    host_prefix: str,
) -> tuple[list[RunRecord], list[RunRecord]]:
    """Candidates for a worker of `queue`: the `running` runs whose lease is free or expired,
    and the `queued` ones (oldest first, at most `limit` of each), then the `running` ones
    held, under a live lease, by a process of this host (`host_prefix`: "host:"), soonest to
    expire first, which the caller keeps if their holder is dead. Only runs whose agent the
    worker knows."""
    now = time.time()
    knows = sa.or_(
        runs.c.agent_ref.in_(agent_refs),
        sa.and_(runs.c.agent_ref.is_(None), runs.c.agent_name.in_(agent_names)),
    )
    mine = sa.and_(runs.c.queue == queue, knows)
    free = sa.or_(runs.c.owner.is_(None), runs.c.lease_expires_at < now)
    oldest = _select_runs().order_by(runs.c.created_at, runs.c.id).limit(limit)
    orphans = conn.execute(oldest.where(runs.c.status == "running", mine, free)).all()
    queued = conn.execute(oldest.where(runs.c.status == "queued", mine)).all()
    # v3: runs awaiting approval whose every call is decided: a worker continues them.
    undecided = (
        sa.select(approvals.c.call_id)
        .where(approvals.c.run_id == runs.c.id, approvals.c.status == "pending")
        .exists()
    )
    decided = conn.execute(
        oldest.where(runs.c.status == "awaiting_approval", mine, ~undecided)
    ).all()
    # A dead holder renews its lease no more: its lease is among the first to run out.
    held_here = conn.execute(
        _select_runs()
        .where(
            runs.c.status == "running",
            mine,
            runs.c.lease_expires_at >= now,
            runs.c.owner.startswith(host_prefix, autoescape=True),
        )
        .order_by(runs.c.lease_expires_at)
        .limit(limit)
    ).all()
    conn.commit()
    return [record(r) for r in [*orphans, *decided, *queued]], [record(r) for r in held_here]


def get_run_row(conn: Connection, run_id: str) -> Any:
    return conn.execute(_select_runs().where(runs.c.id == run_id)).one_or_none()


def get_run(conn: Connection, run_id: str) -> RunRecord | None:
    row = get_run_row(conn, run_id)
    conn.commit()
    return None if row is None else record(row)


def take_lease(
    conn: Connection, run_id: str, owner: str, lease_seconds: float, dead_holder: str | None
) -> bool:
    """Claim the run if its lease is free, expired, ours, or held by a process known dead."""
    taken = _take(conn, run_id, owner, lease_seconds, dead_holder)
    conn.commit()
    return taken


def _take(
    conn: Connection,
    run_id: str,
    owner: str,
    lease_seconds: float,
    dead_holder: str | None,
    status: RunStatus | None = None,
) -> bool:
    if conn.dialect.name == "postgresql" and not _lock_unless_locked(conn, run_id):
        return False
    now = time.time()
    free = sa.or_(runs.c.owner.is_(None), runs.c.lease_expires_at < now, runs.c.owner == owner)
    if dead_holder is not None:
        free = sa.or_(free, runs.c.owner == dead_holder)
    where = [runs.c.id == run_id, free]
    if status is not None:
        where.append(runs.c.status == status)
    result = conn.execute(
        runs.update()
        .where(*where)
        .values(owner=owner, lease_expires_at=now + lease_seconds, status="running")
    )
    return bool(result.rowcount == 1)


def _lock_unless_locked(conn: Connection, run_id: str) -> bool:
    """Lock the run's row for this transaction, unless another transaction holds it (another
    claimer taking it, its holder writing a step): then False at once, as a lost claim, instead
    of waiting for that transaction to end (`FOR UPDATE SKIP LOCKED`, PostgreSQL)."""
    locked = conn.execute(
        sa.select(runs.c.id).where(runs.c.id == run_id).with_for_update(skip_locked=True)
    ).first()
    return locked is not None


ClaimEvents = Callable[
    [RunRecord, list[JournalRecord], str | None, dict[str, Any] | None], list[NewEvent]
]


def claim(
    conn: Connection,
    run_id: str,
    owner: str,
    lease_seconds: float,
    dead_holder: str | None,
    status: RunStatus,
    new_events: ClaimEvents,
) -> tuple[RunRecord, list[JournalRecord], int] | None:
    """`take_lease` of a run still in `status` (the one the caller read and decided to claim it
    in), then, in the same transaction, read what a replay needs and log the events
    `new_events(run, journal, last attempt event's type, its payload)` returns.

    Returns the run, its journal and the last event's seq; None (nothing written) if the lease
    is not free or the run's status changed since it was read: a holder that finished it
    meanwhile gave its lease up, and a free lease alone would reopen a completed, failed or
    cancelled run. Once the fenced update has the run, no other holder can add a step, so the
    journal read is the whole of it. On PostgreSQL a row another transaction holds (another
    claimer's) is passed over at once (`_lock_unless_locked`): None, as a lost claim.
    """
    if not _take(conn, run_id, owner, lease_seconds, dead_holder, status):
        conn.rollback()
        return None
    row = get_run_row(conn, run_id)
    entries = _journal(conn, run_id)
    last_seq = _max_event_seq(conn, run_id)
    attempt = _last_attempt(conn, run_id)
    run = record(row)
    logged = new_events(
        run,
        entries,
        None if attempt is None else attempt.type,
        None if attempt is None else load_json(attempt.payload),
    )
    if logged:
        log_events(conn, _event_rows(run_id, last_seq + 1, logged, time.time()))
    conn.commit()
    return run, entries, last_seq + len(logged)


def _journal(conn: Connection, run_id: str) -> list[JournalRecord]:
    rows = conn.execute(
        sa.select(journal).where(journal.c.run_id == run_id).order_by(journal.c.seq)
    ).all()
    return [
        JournalRecord(r.kind, r.key, r.fingerprint, load_json(r.payload), seq=r.seq) for r in rows
    ]


def read_journal(conn: Connection, run_id: str) -> list[JournalRecord]:
    entries = _journal(conn, run_id)
    conn.commit()
    return entries


def _max_event_seq(conn: Connection, run_id: str) -> int:
    value = conn.execute(
        sa.select(sa.func.max(events.c.seq)).where(events.c.run_id == run_id)
    ).scalar_one()
    return int(value or 0)


def max_event_seq(conn: Connection, run_id: str) -> int:
    value = _max_event_seq(conn, run_id)
    conn.commit()
    return value


def _event_rows(
    run_id: str, first_seq: int, new: list[NewEvent], now: float
) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "seq": first_seq + i,
            "type": e.type,
            "payload": dump_json(e.payload),
            "created_at": now,
        }
        for i, e in enumerate(new)
    ]


# The hot path's statements: a step is a few small writes, and SQLAlchemy's per-call statement
# work would cost more than the SQL (see prepared.py).
_FENCED_STEP = (
    runs.update()
    .where(runs.c.id == sa.bindparam("rid"), runs.c.owner == sa.bindparam("own"))
    .values(
        updated_at=sa.bindparam("now"),
        lease_expires_at=sa.bindparam("expires"),
        **{name: getattr(runs.c, name) + sa.bindparam(f"d_{name}") for name in USAGE_COLUMNS},
    )
)
# A stop asked for from another process comes back with every step (RETURNING, SQLite 3.35+ and
# PostgreSQL), or, on an older SQLite, from one more primary-key read.
_STEP = Prepared(_FENCED_STEP.returning(runs.c.cancel_requested))
_STEP_PLAIN = Prepared(_FENCED_STEP)
_INSERT_JOURNAL = Prepared(
    journal.insert().values({c.name: sa.bindparam(c.name) for c in journal.c})
)
_INSERT_EVENTS = Prepared(events.insert().values({c.name: sa.bindparam(c.name) for c in events.c}))

# The channel every transaction that adds events to a watched run NOTIFYs on PostgreSQL, the
# run's id as payload: a server's listener (`pg_listen.py`) wakes the event streams of that run.
# NOTIFY is transactional (sent at commit, dropped on rollback) and de-duplicated per
# transaction, but every notifying commit of the cluster takes one lock in turn, held through
# its WAL flush: notifying every step cut PostgreSQL's steps/s to the disk's flushes per second
# (bench/pg_notify.py: 230 against 1,280 at 16 connections). So a listener holds a shared
# advisory lock (WATCH_LOCK_CLASS, hashtext(run id)) on each run it watches, and a writer
# notifies only if it cannot take that lock exclusively (`watched`): nobody watching costs a
# lock-table entry, not a serialized commit. The writer holds the lock it took until it commits,
# so a watch that begins meanwhile waits for that commit, and its first read after sees it.
EVENTS_CHANNEL = "runplane_events"
WATCH_LOCK_CLASS = 0x726E7077  # "rnpw": the first key of every watch's advisory lock


def watched(run_id: str) -> str:
    """The SQL condition: someone watches the run whose id is the SQL expression `run_id`."""
    return f"NOT pg_try_advisory_xact_lock({WATCH_LOCK_CLASS}, hashtext({run_id}))"


_RUN_ID = "CAST(:rid AS text)"
_NOTIFY = sa.text(f"SELECT pg_notify('{EVENTS_CHANNEL}', {_RUN_ID}) WHERE {watched(_RUN_ID)}")


def log_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert event rows (`_event_rows`) of one run, and on PostgreSQL notify the run's
    watchers if it has any: every transaction that logs events goes through here (a test
    checks it)."""
    if not rows:
        return
    if len(rows) == 1:
        _INSERT_EVENTS.execute(conn, rows[0])
    else:
        _INSERT_EVENTS.executemany(conn, rows)
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"rid": rows[0]["run_id"]})


_RENEW = (
    runs.update()
    .where(runs.c.id == sa.bindparam("rid"), runs.c.owner == sa.bindparam("own"))
    .values(lease_expires_at=sa.bindparam("expires"))
)
_HEARTBEAT = Prepared(_RENEW.returning(runs.c.cancel_requested))
_HEARTBEAT_PLAIN = Prepared(_RENEW)


def _fenced(
    conn: Connection, returning: Prepared, plain: Prepared, params: dict[str, Any]
) -> tuple[bool, CancelMode | None]:
    """Run an owner-fenced update: whether the run is still ours, and its `cancel_requested`."""
    if conn.dialect.update_returning:
        row = returning.execute(conn, params).first()
        return (False, None) if row is None else (True, row[0])
    if plain.execute(conn, params).rowcount != 1:
        return False, None
    return True, conn.execute(
        sa.select(runs.c.cancel_requested).where(runs.c.id == params["rid"])
    ).scalar_one()


def append(
    conn: Connection,
    run_id: str,
    owner: str,
    lease_seconds: float,
    journal_seq: int,
    entry: JournalEntry | None,
    event_seq: int,
    new_events: list[NewEvent],
    usage: UsageDelta | None,
) -> Fenced:
    """One step in one transaction; None (and nothing written) if the run is no longer ours.

    The events get seqs from `event_seq` on, unless another process asked the run to stop:
    its `cancel_requested` event is in the log then, and this step's events follow it.
    """
    now = time.time()
    params: dict[str, Any] = {
        "rid": run_id,
        "own": owner,
        "now": now,
        "expires": now + lease_seconds,
    }
    for name in USAGE_COLUMNS:
        params[f"d_{name}"] = getattr(usage, name) if usage is not None else 0
    # The owner check comes first and fences the step: a process whose lease was taken over
    # writes nothing, so a journal never interleaves two executions.
    ours, cancel = _fenced(conn, _STEP, _STEP_PLAIN, params)
    if not ours:
        conn.rollback()
        return None
    if cancel is not None:
        event_seq = max(event_seq, _max_event_seq(conn, run_id) + 1)
    if entry is not None:
        _INSERT_JOURNAL.execute(
            conn,
            {
                "run_id": run_id,
                "seq": journal_seq,
                "kind": entry.kind,
                "key": entry.key,
                "fingerprint": entry.fingerprint,
                "payload": dump_json(entry.payload),
                "created_at": now,
            },
        )
    if new_events:
        log_events(conn, _event_rows(run_id, event_seq, new_events, now))
    conn.commit()
    return cancel, event_seq


def heartbeat(conn: Connection, run_id: str, owner: str, lease_seconds: float) -> Fenced:
    """Renew the lease; the run's `cancel_requested` (and 0), or None if it is not ours."""
    params = {"rid": run_id, "own": owner, "expires": time.time() + lease_seconds}
    ours, cancel = _fenced(conn, _HEARTBEAT, _HEARTBEAT_PLAIN, params)
    conn.commit()
    return (cancel, 0) if ours else None


def finish(
    conn: Connection,
    run_id: str,
    owner: str,
    event_seq: int,
    new_events: list[NewEvent],
    status: RunStatus,
    final_output: Any | None,
    error_type: str | None,
    error: str | None,
) -> Fenced:
    """Record the outcome and its events (the attempt's end, the run's) and give the lease up;
    None (and nothing written) if the run is no longer ours. A pending cancel request is over
    with the run's outcome. The events follow any the process that asked to cancel wrote."""
    now = time.time()
    result = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.owner == owner)
        .values(
            status=status,
            updated_at=now,
            finished_at=now,
            owner=None,
            lease_expires_at=None,
            final_output=None if final_output is None else dump_json(final_output),
            error_type=error_type,
            error=error,
            cancel_requested=None,
        )
    )
    if result.rowcount != 1:
        conn.rollback()
        return None
    event_seq = max(event_seq, _max_event_seq(conn, run_id) + 1)
    log_events(conn, _event_rows(run_id, event_seq, new_events, now))
    conn.commit()
    return None, event_seq


def release(conn: Connection, run_id: str, owner: str, event: NewEvent | None = None) -> None:
    """Give the lease up, leaving the run resumable, and log `event` (the attempt's end) if the
    lease was still ours. Its seq is found here: this also runs after a write whose outcome the
    session never learned."""
    now = time.time()
    result = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.owner == owner)
        .values(owner=None, lease_expires_at=None, updated_at=now)
    )
    if event is not None and result.rowcount == 1:
        seq = _max_event_seq(conn, run_id) + 1
        log_events(conn, _event_rows(run_id, seq, [event], now))
    conn.commit()


@dataclass(frozen=True)
class RunFilter:
    """Which runs a listing holds (`Engine.list_runs`); `older_than` is a cursor's position,
    (created_at, id): only the runs after it in the listing's order."""

    status: RunStatus | None = None
    agent: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    older_than: tuple[float, str] | None = None


def _run_id_ordered(conn: Connection) -> sa.ColumnElement[str]:
    # Ties in created_at are ordered by id in code-point order on both databases (SQLite compares
    # bytes; a PostgreSQL database's own collation could be a locale's), so a page boundary
    # means the same on each, and as Python's str ordering.
    return runs.c.id.collate("C") if conn.dialect.name == "postgresql" else runs.c.id


def list_runs(
    conn: Connection, limit: int | None, which: RunFilter | None = None
) -> list[RunRecord]:
    """Runs newest first (created_at, then id, descending), at most `limit`, as `which` says."""
    which = which or RunFilter()
    run_id = _run_id_ordered(conn)
    query = _select_runs().order_by(runs.c.created_at.desc(), run_id.desc()).limit(limit)
    if which.status is not None:
        query = query.where(runs.c.status == which.status)
    if which.agent is not None:
        query = query.where(runs.c.agent_name == which.agent)
    if which.created_after is not None:
        query = query.where(runs.c.created_at >= which.created_after)
    if which.created_before is not None:
        query = query.where(runs.c.created_at < which.created_before)
    if which.older_than is not None:
        created_at, last_id = which.older_than
        query = query.where(
            sa.or_(
                runs.c.created_at < created_at,
                sa.and_(runs.c.created_at == created_at, run_id < last_id),
            )
        )
    rows = conn.execute(query).all()
    conn.commit()
    return [record(r) for r in rows]


def list_events(conn: Connection, run_id: str, after: int, limit: int | None) -> list[EventRecord]:
    query = (
        sa.select(events)
        .where(events.c.run_id == run_id, events.c.seq > after)
        .order_by(events.c.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).all()
    conn.commit()
    return [EventRecord(r.run_id, r.seq, r.type, load_json(r.payload), r.created_at) for r in rows]


def write_call(write: Write) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The transaction applying a session's write, and its arguments (`tx.call(fn, *args)`):
    the functions themselves, so PostgreSQL runs its one-statement forms of them."""
    if isinstance(write, Append):
        return append, (
            write.run_id,
            write.owner,
            write.lease_seconds,
            write.journal_seq,
            write.journal,
            write.event_seq,
            write.events,
            write.usage,
        )
    if isinstance(write, Heartbeat):
        return heartbeat, (write.run_id, write.owner, write.lease_seconds)
    if isinstance(write, Finish):
        return finish, (
            write.run_id,
            write.owner,
            write.event_seq,
            write.events,
            write.status,
            write.final_output,
            write.error_type,
            write.error,
        )
    if isinstance(write, Interrupt):
        from .approvals import interrupt

        return interrupt, (write.run_id, write.owner, write.event_seq, write.events, write.snapshot)
    return release, (write.run_id, write.owner, write.event)


def committed(conn: Connection, write: Write) -> tuple[CancelMode | None, int] | None:
    """What `write` found when it was applied already (a retried request whose first answer was
    lost), as a write answers (the run's stop request, its first event's seq); None if it was
    not.

    A step with a journal entry committed iff, under a lease its holder still has, the journal
    has a row at its seq (only the holder writes journal seqs past those its claim read). A step
    with events only, iff its first event is in the log, as written, at or after its seq. An
    outcome iff its attempt's end is in the log as written (the holder and the moment make it
    unique). Event seqs are only compared as a lower bound, so this holds where the database
    numbers events itself. A heartbeat or a release is harmless twice, and a step with neither
    entry nor events cannot be told apart: False.
    """
    first: int | None = None
    row = get_run_row(conn, write.run_id)
    if isinstance(write, Append) and write.detectable:
        ours = row is not None and row.owner == write.owner
        if ours and (
            write.journal is None or _has_journal_row(conn, write.run_id, write.journal_seq)
        ):
            first = _has_event(conn, write.run_id, write.events, write.event_seq)
            if first is None and not write.events:
                first = write.event_seq  # a journal entry alone: it takes no event seq
    elif isinstance(write, (Finish, Interrupt)):
        first = _has_event(conn, write.run_id, write.events, write.event_seq)
    conn.commit()
    if first is None or row is None:
        return None
    return row._mapping.get("cancel_requested"), first


def _has_journal_row(conn: Connection, run_id: str, seq: int) -> bool:
    query = sa.select(journal.c.seq).where(journal.c.run_id == run_id, journal.c.seq == seq)
    return conn.execute(query).first() is not None


def _has_event(conn: Connection, run_id: str, new: list[NewEvent], from_seq: int) -> int | None:
    """The seq of the first of `new` as written, at or after `from_seq`; None if not there."""
    if not new:
        return None
    query = sa.select(events.c.seq).where(
        events.c.run_id == run_id,
        events.c.seq >= from_seq,
        events.c.type == new[0].type,
        events.c.payload == dump_json(new[0].payload),
    )
    seq = conn.execute(query.order_by(events.c.seq).limit(1)).scalar_one_or_none()
    return None if seq is None else int(seq)


def last_attempt_started(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """The payload of the run's last `attempt_started` event (inside a transaction)."""
    payload = conn.execute(
        sa.select(events.c.payload)
        .where(events.c.run_id == run_id, events.c.type == AttemptStarted.TYPE)
        .order_by(events.c.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    return None if payload is None else dict(load_json(payload))


def _step_latencies(conn: Connection) -> tuple[sa.CTE, sa.ColumnElement[Any]]:
    """The step events' `seconds` (their latency), each payload parsed once, and that value as a
    number; the CTE holds only rows where it is one (an older event has none; an odd one is
    passed over).

    MATERIALIZED: otherwise both databases may inline the CTE and parse a payload once per
    place its value is used (the sum, the count, every bucket).
    """
    step_types = events.c.type.in_((STEP_EVENTS["model"], STEP_EVENTS["tool"]))
    if conn.dialect.name == "postgresql":
        value: sa.ColumnElement[Any] = sa.cast(events.c.payload, JSON)["seconds"]
    else:
        value = sa.func.json_extract(events.c.payload, "$.seconds")
    timed = (
        sa.select(events.c.type.label("type"), value.label("v"))
        .where(step_types)
        .cte("timed")
        .prefix_with("MATERIALIZED")
    )
    if conn.dialect.name == "postgresql":
        is_number = sa.func.json_typeof(timed.c.v) == "number"
        seconds = sa.case((is_number, sa.cast(sa.cast(timed.c.v, sa.Text), sa.Float)))
    else:
        is_number = sa.func.typeof(timed.c.v).in_(("real", "integer"))
        seconds = sa.case((is_number, timed.c.v))
    return timed, seconds


def measure(conn: Connection, buckets: tuple[float, ...]) -> Measures:
    """Counts over the whole store, each one aggregate query: runs by status, journal entries by
    kind, the latency histogram of model and tool calls (from their events' `seconds`), leases
    held now, and what waits in each queue (runs queued, and tool tasks if the store has them)."""
    now = time.time()
    by_status = conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status))
    steps = conn.execute(sa.select(journal.c.kind, sa.func.count()).group_by(journal.c.kind))
    timed, seconds = _step_latencies(conn)
    latency_rows = conn.execute(
        sa.select(
            timed.c.type,
            sa.func.count(seconds),
            sa.func.coalesce(sa.func.sum(seconds), 0.0),
            *(sa.func.count(sa.case((seconds <= b, 1))) for b in buckets),
        )
        .group_by(timed.c.type)
        .having(sa.func.count(seconds) > 0)
    ).all()
    kinds = {event_type: kind for kind, event_type in STEP_EVENTS.items()}
    latency = {
        kinds[row[0]]: Latencies(
            buckets, tuple(int(n) for n in row[3:]), int(row[1]), float(row[2])
        )
        for row in latency_rows
    }
    leased = runs.c.owner.is_not(None) & (runs.c.lease_expires_at > now)
    leases = {"run": int(conn.execute(sa.select(sa.func.count()).where(leased)).scalar_one())}
    queued = conn.execute(
        sa.select(sa.func.coalesce(runs.c.queue, "default"), sa.func.count())
        .where(runs.c.status == "queued")
        .group_by(runs.c.queue)
    )
    queued_tasks: dict[str, int] = {}
    if sa.inspect(conn).has_table(tasks.name):
        task_leased = tasks.c.owner.is_not(None) & (tasks.c.lease_expires_at > now)
        leases["task"] = int(
            conn.execute(sa.select(sa.func.count()).where(task_leased)).scalar_one()
        )
        queued_tasks = {
            str(q): int(n)
            for q, n in conn.execute(
                sa.select(tasks.c.queue, sa.func.count())
                .where(tasks.c.status == "pending")  # the tool tasks' own vocabulary
                .group_by(tasks.c.queue)
            )
        }
    measures = Measures(
        runs={str(status): int(n) for status, n in by_status},
        steps={str(kind): int(n) for kind, n in steps},
        latency=latency,
        leases=leases,
        queued_runs={str(q): int(n) for q, n in queued},
        queued_tasks=queued_tasks,
    )
    conn.commit()
    return measures


# -- remote tool tasks ----------------------------------------------------------------------------


def task_record(row: Any) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        run_id=row.run_id,
        call_key=row.call_key,
        queue=row.queue,
        tool_name=row.tool_name,
        call_id=row.call_id,
        arguments=load_json(row.arguments),
        context=None if row.context is None else load_json(row.context),
        status=row.status,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        timeout=row.timeout,
        retry_delay=row.retry_delay,
        owner=row.owner,
        lease_expires_at=row.lease_expires_at,
        available_at=row.available_at,
        result=None if row.result is None else TaskResult.from_json(load_json(row.result)),
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _task_row(conn: Connection, task_id: str) -> Any:
    return conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one_or_none()


def enqueue_task(conn: Connection, task_id: str, spec: TaskSpec) -> TaskRecord:
    """Insert the task as `task_id`, or return the one (run_id, call_key) already names."""
    now = time.time()
    try:
        conn.execute(
            tasks.insert().values(
                id=task_id,
                run_id=spec.run_id,
                call_key=spec.call_key,
                queue=spec.queue,
                tool_name=spec.tool_name,
                call_id=spec.call_id,
                arguments=dump_json(spec.arguments),  # JSON text: NUL-safe on PostgreSQL
                context=None if spec.context is None else dump_json(spec.context),
                status="pending",
                attempts=0,
                max_attempts=spec.max_attempts,
                timeout=spec.timeout,
                retry_delay=spec.retry_delay,
                available_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    except IntegrityError:
        conn.rollback()
    row = conn.execute(
        sa.select(tasks).where(tasks.c.run_id == spec.run_id, tasks.c.call_key == spec.call_key)
    ).one()
    conn.commit()
    return task_record(row)


def get_task(conn: Connection, task_id: str) -> TaskRecord | None:
    row = _task_row(conn, task_id)
    conn.commit()
    return None if row is None else task_record(row)


def list_tasks(conn: Connection, run_id: str) -> list[TaskRecord]:
    rows = conn.execute(
        sa.select(tasks).where(tasks.c.run_id == run_id).order_by(tasks.c.created_at, tasks.c.id)
    ).all()
    conn.commit()
    return [task_record(r) for r in rows]


def _held(lease: TaskLease) -> Any:
    """The attempt still holds the task: the fence of every write made under its lease."""
    return sa.and_(
        tasks.c.id == lease.task_id,
        tasks.c.owner == lease.owner,
        tasks.c.attempts == lease.attempt,
        tasks.c.status == "running",
    )


def _end_attempt(conn: Connection, lease: TaskLease, error: str, now: float) -> bool:
    """Fenced: the attempt ends without a result; the task is retried later, or fails."""
    row = conn.execute(
        sa.select(tasks.c.max_attempts, tasks.c.retry_delay).where(_held(lease))
    ).one_or_none()
    if row is None:
        return False
    last = lease.attempt >= row.max_attempts
    values: dict[str, Any] = {
        "status": "failed" if last else "pending",
        "owner": None,
        "lease_expires_at": None,
        "error": error,
        "updated_at": now,
    }
    if not last:
        values["available_at"] = now + retry_delay(row.retry_delay, lease.attempt)
    result = conn.execute(tasks.update().where(_held(lease)).values(**values))
    return bool(result.rowcount == 1)


def claim_task(
    conn: Connection,
    queue: str,
    tools: list[str],
    owner: str,
    lease_seconds: float,
    dead: Callable[[str], bool],
) -> TaskRecord | None:
    """End the queue's abandoned attempts, then claim the oldest available task of `tools`.

    `SKIP LOCKED` (PostgreSQL) lets claimers pass over a row another claimer is taking; the
    update is fenced by the status it read, which makes a claim safe on SQLite too (the file's
    write lock serializes writers there, and a stale read fails and runs again).
    """
    now = time.time()
    # Read, not locked: live attempts' heartbeats and results must not wait for a claimer, and
    # ending an abandoned one is fenced by its holder and number, so a race changes nothing.
    running = conn.execute(
        sa.select(tasks).where(tasks.c.queue == queue, tasks.c.status == "running")
    ).all()
    for row in running:
        task = task_record(row)
        reason = task.abandoned(now, dead)
        if reason is not None:
            _end_attempt(conn, task.held(0), f"attempt {task.attempts}: {reason}", now)
    while True:
        candidate = conn.execute(
            sa.select(tasks.c.id)
            .where(
                tasks.c.queue == queue,
                tasks.c.status == "pending",
                tasks.c.available_at <= now,
                tasks.c.tool_name.in_(tools),
            )
            .order_by(tasks.c.available_at, tasks.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if candidate is None:
            conn.commit()
            return None
        taken = conn.execute(
            tasks.update()
            .where(tasks.c.id == candidate, tasks.c.status == "pending")
            .values(
                status="running",
                attempts=tasks.c.attempts + 1,
                owner=owner,
                lease_expires_at=now + lease_seconds,
                updated_at=now,
            )
        )
        if taken.rowcount == 1:
            row = _task_row(conn, candidate)
            conn.commit()
            return task_record(row)


def heartbeat_task(conn: Connection, lease: TaskLease) -> bool:
    result = conn.execute(
        tasks.update()
        .where(_held(lease))
        .values(lease_expires_at=time.time() + lease.lease_seconds)
    )
    conn.commit()
    return bool(result.rowcount == 1)


def complete_task(conn: Connection, lease: TaskLease, result: TaskResult) -> TaskRecord | None:
    """Fenced: record the result once; None (nothing written) if the attempt lost the task."""
    done = conn.execute(
        tasks.update()
        .where(_held(lease))
        .values(
            status="completed",
            result=dump_json(result.to_json()),
            owner=None,
            lease_expires_at=None,
            updated_at=time.time(),
        )
    )
    if done.rowcount != 1:
        conn.rollback()
        return None
    row = _task_row(conn, lease.task_id)
    conn.commit()
    return task_record(row)


def fail_task(conn: Connection, lease: TaskLease, error: str) -> TaskRecord | None:
    """Fenced: `_end_attempt`; None (nothing written) if the attempt lost the task."""
    if not _end_attempt(conn, lease, f"attempt {lease.attempt}: {error}", time.time()):
        conn.rollback()
        return None
    row = _task_row(conn, lease.task_id)
    conn.commit()
    return task_record(row)


def cancel_requested(conn: Connection, run_id: str) -> CancelMode | None:
    """The run's pending cancel request (None: none, or no such run): one primary-key read."""
    value = conn.execute(
        sa.select(runs.c.cancel_requested).where(runs.c.id == run_id)
    ).scalar_one_or_none()
    conn.commit()
    return value


def executing(run: RunRecord, now: float, holder_is_dead: Callable[[str], bool]) -> bool:
    """Whether a live process holds the run's lease: it carries a cancel out itself."""
    return (
        run.status == "running"
        and run.owner is not None
        and run.lease_expires_at is not None
        and run.lease_expires_at > now
        and not holder_is_dead(run.owner)
    )


# What the last attempt event says, for writing the end of an attempt whose process died.
LastAttempt = Callable[[RunRecord, str | None, dict[str, Any] | None], list[NewEvent]]


def _last_attempt(conn: Connection, run_id: str) -> Any:
    return conn.execute(
        sa.select(events.c.type, events.c.payload)
        .where(
            events.c.run_id == run_id, events.c.type.in_((AttemptStarted.TYPE, AttemptEnded.TYPE))
        )
        .order_by(events.c.seq.desc())
        .limit(1)
    ).one_or_none()


def cancel_run(
    conn: Connection,
    run_id: str,
    mode: CancelMode | None,
    asked: CancelRequested | None,
    holder_is_dead: Callable[[str], bool],
    attempt_end: LastAttempt,
) -> RunRecord | None:
    """Ask the run to stop, in one transaction; the run as stored afterwards (None: no run).

    A run no live process holds is recorded cancelled now, with `asked` (the request, logged
    as its event; None when carrying out one asked for earlier), the end of an attempt whose
    process died (`attempt_end(run, last attempt event's type, its payload)`) and
    `run_cancelled`. An
    executing run gets `cancel_requested` set ("immediate" wins over "after_turn") and `asked`
    logged, for its holder to carry out. A finished run is returned as it is, unchanged. Every
    update is conditioned on what was read, so a run that changed meanwhile is read again.
    """
    for _ in range(100):  # each lap means another process changed the run meanwhile
        row = get_run_row(conn, run_id)
        if row is None:
            conn.commit()
            return None
        run = record(row)
        if run.status in ("completed", "failed", "cancelled"):
            conn.commit()
            return run
        now = time.time()
        same = sa.and_(
            runs.c.id == run_id,
            runs.c.status == run.status,
            runs.c.owner.is_(None) if run.owner is None else runs.c.owner == run.owner,
        )
        logged: list[NewEvent] = []
        if executing(run, now, holder_is_dead):
            stronger = (
                "immediate"
                if "immediate" in (mode, run.cancel_requested)
                else (mode or run.cancel_requested)
            )
            changed = conn.execute(runs.update().where(same).values(cancel_requested=stronger))
            if changed.rowcount != 1:
                conn.rollback()
                continue
            if asked is not None:  # with the holder it asks to stop
                told = dataclasses.replace(asked, holder=run.owner)
                logged.append(NewEvent(told.TYPE, told.to_payload()))
        else:
            changed = conn.execute(
                runs.update()
                .where(same)
                .values(
                    status="cancelled",
                    updated_at=now,
                    finished_at=now,
                    owner=None,
                    lease_expires_at=None,
                    cancel_requested=None,
                )
            )
            if changed.rowcount != 1:
                conn.rollback()
                continue
            last = _last_attempt(conn, run_id)
            if asked is not None:
                logged.append(NewEvent(asked.TYPE, asked.to_payload()))
            logged += attempt_end(
                run,
                None if last is None else last.type,
                None if last is None else load_json(last.payload),
            )
            logged.append(NewEvent(RunCancelled.TYPE, RunCancelled().to_payload()))
        if logged:
            first = _max_event_seq(conn, run_id) + 1
            log_events(conn, _event_rows(run_id, first, logged, now))
        after = record(get_run_row(conn, run_id))
        conn.commit()
        return after
    raise RuntimeError(f"run {run_id!r} kept changing while it was being cancelled")


FINISHED_STATUSES = ("completed", "failed", "cancelled")


def prune(conn: Connection, finished_before: float, batch: int) -> int:
    """Delete at most `batch` runs that finished before `finished_before`, with their journal,
    events and tool tasks, in one transaction; how many runs it deleted.

    The runs chosen cannot change before they are deleted: PostgreSQL locks their rows (skipping
    any another transaction holds: a claim resuming a failed run keeps it), and SQLite's write
    refuses a snapshot another writer has changed, and the transaction runs again.
    """
    chosen = (
        sa.select(runs.c.id)
        .where(runs.c.status.in_(FINISHED_STATUSES), runs.c.finished_at < finished_before)
        .order_by(runs.c.finished_at)
        .limit(batch)
    )
    if conn.dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    ids = list(conn.execute(chosen).scalars())
    if ids:
        for table in (events, journal, tasks, approvals, run_states, runs):
            column = table.c.id if table is runs else table.c.run_id
            conn.execute(table.delete().where(column.in_(ids)))
    conn.commit()
    return len(ids)


# Transactions that only read: they need no write lock and may run beside a writer.
READS: frozenset[Callable[..., Any]] = frozenset(
    {
        schema_version,
        get_run,
        list_runs,
        list_events,
        read_journal,
        max_event_seq,
        measure,
        get_task,
        list_tasks,
        claimable_runs,
        cancel_requested,
        committed,
    }
)


# -- for the approvals' transactions (local/approvals.py) ----------------------------------------


def max_event_seq_in(conn: Connection, run_id: str) -> int:
    """The run's last event seq, inside the caller's transaction."""
    return _max_event_seq(conn, run_id)


def insert_events(
    conn: Connection, run_id: str, first: int, new: list[NewEvent], now: float
) -> None:
    """Log `new` from seq `first` on, inside the caller's transaction (through `log_events`,
    so the run's watchers hear of them)."""
    log_events(conn, _event_rows(run_id, first, new, now))
