"""Every statement the engine runs, written once as synchronous SQLAlchemy Core transactions.

The same functions run on SQLite (in a worker thread, the whole transaction in one hop) and on
PostgreSQL (through `AsyncConnection.run_sync` over asyncpg): one code path for both databases.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..events import AttemptEnded, AttemptStarted, CancelRequested, RunCancelled
from ..records import (
    CancelMode,
    EventRecord,
    JournalEntry,
    JournalRecord,
    NewEvent,
    RunRecord,
    RunSpec,
    RunStatus,
    UsageDelta,
)
from ..serde import dump_json, load_json
from .prepared import Prepared
from .schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    events,
    journal,
    metadata,
    runs,
    schema_info,
    tasks,
)

__all__ = [
    "READS",
    "USAGE_COLUMNS",
    "append",
    "cancel_requested",
    "cancel_run",
    "claim",
    "create_run",
    "create_schema",
    "finish",
    "get_run",
    "heartbeat",
    "list_events",
    "list_runs",
    "max_event_seq",
    "prune",
    "read_journal",
    "release",
    "schema_version",
    "take_lease",
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


def new_record(spec: RunSpec, owner: str, now: float, lease_seconds: float) -> RunRecord:
    """The row `create_run` inserts, as a record: a new run needs no read after its insert."""
    return RunRecord(
        id=spec.run_id,
        agent_name=spec.agent_name,
        status="running",
        input=spec.input,
        options=spec.options,
        created_at=now,
        updated_at=now,
        finished_at=None,
        owner=owner,
        lease_expires_at=now + lease_seconds,
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
        _INSERT_EVENTS.execute(conn, _event_rows(spec.run_id, 1, [started], record.created_at)[0])
        conn.commit()
    except IntegrityError:
        conn.rollback()
        return None
    return record


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
    conn: Connection, run_id: str, owner: str, lease_seconds: float, dead_holder: str | None
) -> bool:
    now = time.time()
    free = sa.or_(runs.c.owner.is_(None), runs.c.lease_expires_at < now, runs.c.owner == owner)
    if dead_holder is not None:
        free = sa.or_(free, runs.c.owner == dead_holder)
    result = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, free)
        .values(owner=owner, lease_expires_at=now + lease_seconds, status="running")
    )
    return bool(result.rowcount == 1)


ClaimEvents = Callable[
    [RunRecord, list[JournalRecord], str | None, dict[str, Any] | None], list[NewEvent]
]


def claim(
    conn: Connection,
    run_id: str,
    owner: str,
    lease_seconds: float,
    dead_holder: str | None,
    new_events: ClaimEvents,
) -> tuple[RunRecord, list[JournalRecord], int] | None:
    """`take_lease`, then, in the same transaction, read what a replay needs and log the events
    `new_events(run, journal, last attempt event's type, its payload)` returns.

    Returns the run, its journal and the last event's seq; None (nothing written) if the lease
    is not free. Once the fenced update has the run, no other holder can add a step, so the
    journal read is the whole of it.
    """
    if not _take(conn, run_id, owner, lease_seconds, dead_holder):
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
        _INSERT_EVENTS.executemany(conn, _event_rows(run_id, last_seq + 1, logged, time.time()))
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


# What a fenced write returns when the run is still ours: the run's `cancel_requested`, and the
# seq its first event got (None: the run is no longer ours, and nothing was written).
Fenced = tuple[CancelMode | None, int] | None


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
        _INSERT_EVENTS.executemany(conn, _event_rows(run_id, event_seq, new_events, now))
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
    _INSERT_EVENTS.executemany(conn, _event_rows(run_id, event_seq, new_events, now))
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
        _INSERT_EVENTS.execute(conn, _event_rows(run_id, seq, [event], now)[0])
    conn.commit()


def list_runs(conn: Connection, limit: int | None, status: RunStatus | None) -> list[RunRecord]:
    query = _select_runs().order_by(runs.c.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(runs.c.status == status)
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
            _INSERT_EVENTS.executemany(conn, _event_rows(run_id, first, logged, now))
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
        for table in (events, journal, tasks, runs):
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
        cancel_requested,
    }
)
