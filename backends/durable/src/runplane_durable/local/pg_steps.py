"""PostgreSQL's hot-path transactions, each one statement: one round trip per step.

`sql.py` writes a step as an owner-fenced UPDATE, then its journal and event INSERTs, inside
BEGIN ... COMMIT: five round trips to a server, where SQLite pays nothing for them. Here the same
writes are one statement whose data-modifying CTEs run together, atomically, in autocommit: the
journal and events are inserted only if the fenced update found the run still ours, and if any
part fails nothing is written. They run on the pooled connection's asyncpg driver itself (its
statement cache prepares each once per connection): SQLAlchemy's per-statement machinery cost
more than the round trip. Each function takes the arguments of its `sql.py` counterpart, with
the asyncpg connection first, and returns the same value, so callers cannot tell which one ran.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..records import (
    CancelMode,
    JournalEntry,
    NewEvent,
    RunRecord,
    RunSpec,
    RunStatus,
    UsageDelta,
)
from ..serde import dump_json
from . import sql

__all__ = ["STEPS"]

# The events' primary key: a step whose events collided with those a cancelling process logged
# just before it (its statement's snapshot predates that commit) runs once more, and follows them.
_EVENTS_KEY = "runplane_events_pkey"


async def _fetchrow(conn: Any, query: str, *args: Any) -> Any:
    """One statement (its own transaction); once more if its events took seqs that a process
    cancelling the run had just logged (nothing was written: the statement failed whole)."""
    import asyncpg  # type: ignore[import-untyped]

    try:
        return await conn.fetchrow(query, *args)
    except asyncpg.UniqueViolationError as exc:
        if getattr(exc, "constraint_name", None) != _EVENTS_KEY:
            raise
        return await conn.fetchrow(query, *args)


_NO_USAGE = UsageDelta()

# Every statement that adds events to a run also NOTIFYs its watchers, if it has any
# (`sql.EVENTS_CHANNEL`, the run id as payload; `sql.watched`), in the same statement: no round
# trip more. A SELECT CTE runs only where it is read, so each statement reads `notified`; NOTIFY
# is sent at commit, and not if it fails.

# A stop asked for from another process comes back with every step (`cancel_requested`); the
# process that asked logged its event, so this step's events then follow it (`first`).
_APPEND = f"""
WITH step AS (
    UPDATE runplane_runs
    SET updated_at = $3, lease_expires_at = $4,
        model_calls = model_calls + $5, tool_calls = tool_calls + $6,
        requests = requests + $7, input_tokens = input_tokens + $8,
        output_tokens = output_tokens + $9, total_tokens = total_tokens + $10
    WHERE id = $1 AND owner = $2
    RETURNING id, cancel_requested
), first AS (
    SELECT CASE WHEN step.cancel_requested IS NULL THEN $16::int ELSE GREATEST($16::int,
        (SELECT coalesce(max(seq), 0) + 1 FROM runplane_events WHERE run_id = $1)) END AS seq
    FROM step
), journaled AS (
    INSERT INTO runplane_journal (run_id, seq, kind, key, fingerprint, payload, created_at)
    SELECT id, $11, $12, $13, $14, $15, $3 FROM step WHERE $12::varchar IS NOT NULL
), logged AS (
    INSERT INTO runplane_events (run_id, seq, type, payload, created_at)
    SELECT step.id, first.seq + e.n - 1, e.type, e.payload, $3
    FROM step, first, unnest($17::varchar[], $18::text[]) WITH ORDINALITY AS e(type, payload, n)
), notified AS (
    SELECT pg_notify('{sql.EVENTS_CHANNEL}', step.id) FROM step
    WHERE cardinality($17::varchar[]) > 0 AND {sql.watched("step.id")}
)
SELECT count(*), max(step.cancel_requested), max(first.seq), (SELECT count(*) FROM notified)
FROM step, first
"""

_HEARTBEAT = """
UPDATE runplane_runs SET lease_expires_at = $3 WHERE id = $1 AND owner = $2
RETURNING cancel_requested
"""

_FINISH = f"""
WITH done AS (
    UPDATE runplane_runs
    SET status = $3, updated_at = $4, finished_at = $4, owner = NULL, lease_expires_at = NULL,
        final_output = $5, error_type = $6, error = $7, cancel_requested = NULL
    WHERE id = $1 AND owner = $2
    RETURNING id
), first AS (
    SELECT GREATEST($8::int,
        (SELECT coalesce(max(seq), 0) + 1 FROM runplane_events WHERE run_id = $1)) AS seq
), logged AS (
    INSERT INTO runplane_events (run_id, seq, type, payload, created_at)
    SELECT done.id, first.seq + e.n - 1, e.type, e.payload, $4
    FROM done, first, unnest($9::varchar[], $10::text[]) WITH ORDINALITY AS e(type, payload, n)
), notified AS (
    SELECT pg_notify('{sql.EVENTS_CHANNEL}', done.id) FROM done
    WHERE cardinality($9::varchar[]) > 0 AND {sql.watched("done.id")}
)
SELECT count(*), max(first.seq), (SELECT count(*) FROM notified) FROM done, first
"""

# The event's seq is found in the statement (see sql.release).
_RELEASE = f"""
WITH done AS (
    UPDATE runplane_runs SET owner = NULL, lease_expires_at = NULL, updated_at = $3
    WHERE id = $1 AND owner = $2
    RETURNING id
), logged AS (
    INSERT INTO runplane_events (run_id, seq, type, payload, created_at)
    SELECT id, coalesce((SELECT max(seq) FROM runplane_events WHERE run_id = $1), 0) + 1,
        $4, $5, $3
    FROM done WHERE $4::varchar IS NOT NULL
), notified AS (
    SELECT pg_notify('{sql.EVENTS_CHANNEL}', done.id) FROM done
    WHERE $4::varchar IS NOT NULL AND {sql.watched("done.id")}
)
SELECT count(*), (SELECT count(*) FROM notified) FROM done
"""

_N = len(sql.new_row_names)
_CREATE = f"""
WITH created AS (
    INSERT INTO runplane_runs ({", ".join(sql.new_row_names)})
    VALUES ({", ".join(f"${i + 1}" for i in range(_N))})
    ON CONFLICT (id) DO NOTHING
    RETURNING id, created_at
), logged AS (
    INSERT INTO runplane_events (run_id, seq, type, payload, created_at)
    SELECT id, 1, ${_N + 1}, ${_N + 2}, created_at FROM created
), notified AS (
    SELECT pg_notify('{sql.EVENTS_CHANNEL}', id) FROM created WHERE {sql.watched("id")}
)
SELECT count(*), (SELECT count(*) FROM notified) FROM created
"""


async def append(
    conn: Any,
    run_id: str,
    owner: str,
    lease_seconds: float,
    journal_seq: int,
    entry: JournalEntry | None,
    event_seq: int,
    new_events: list[NewEvent],
    usage: UsageDelta | None,
) -> tuple[CancelMode | None, int] | None:
    now = time.time()
    u = usage if usage is not None else _NO_USAGE
    kind = key = fp = payload = None
    if entry is not None:
        kind, key, fp = entry.kind, entry.key, entry.fingerprint
        payload = dump_json(entry.payload)
    found, cancel, first, _ = await _fetchrow(
        conn,
        _APPEND,
        run_id,
        owner,
        now,
        now + lease_seconds,
        u.model_calls,
        u.tool_calls,
        u.requests,
        u.input_tokens,
        u.output_tokens,
        u.total_tokens,
        journal_seq,
        kind,
        key,
        fp,
        payload,
        event_seq,
        [e.type for e in new_events],
        [dump_json(e.payload) for e in new_events],
    )
    return (cancel, int(first)) if found == 1 else None


async def heartbeat(
    conn: Any, run_id: str, owner: str, lease_seconds: float
) -> tuple[CancelMode | None, int] | None:
    row = await conn.fetchrow(_HEARTBEAT, run_id, owner, time.time() + lease_seconds)
    return None if row is None else (row[0], 0)


async def finish(
    conn: Any,
    run_id: str,
    owner: str,
    event_seq: int,
    new_events: list[NewEvent],
    status: RunStatus,
    final_output: Any | None,
    error_type: str | None,
    error: str | None,
) -> tuple[CancelMode | None, int] | None:
    found, first, _ = await _fetchrow(
        conn,
        _FINISH,
        run_id,
        owner,
        status,
        time.time(),
        None if final_output is None else dump_json(final_output),
        error_type,
        error,
        event_seq,
        [e.type for e in new_events],
        [dump_json(e.payload) for e in new_events],
    )
    return (None, int(first)) if found == 1 else None


async def release(conn: Any, run_id: str, owner: str, event: NewEvent | None = None) -> None:
    await _fetchrow(
        conn,
        _RELEASE,
        run_id,
        owner,
        time.time(),
        None if event is None else event.type,
        None if event is None else dump_json(event.payload),
    )


async def create_run(
    conn: Any, spec: RunSpec, owner: str, lease_seconds: float, started: NewEvent
) -> RunRecord | None:
    record = sql.new_record(spec, owner, time.time(), lease_seconds)
    row = sql.new_row(record)
    inserted = await conn.fetchval(
        _CREATE,
        *(row[name] for name in sql.new_row_names),
        started.type,
        dump_json(started.payload),
    )
    return record if inserted == 1 else None


# Each is one statement outside any transaction block, so it is its own transaction.
STEPS: dict[Callable[..., Any], Callable[..., Awaitable[Any]]] = {
    sql.append: append,
    sql.heartbeat: heartbeat,
    sql.finish: finish,
    sql.release: release,
    sql.create_run: create_run,
}
