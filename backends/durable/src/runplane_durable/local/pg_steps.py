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

from ..records import JournalEntry, NewEvent, RunRecord, RunSpec, RunStatus, UsageDelta
from ..serde import dump_json
from . import sql

__all__ = ["STEPS"]

_NO_USAGE = UsageDelta()

_APPEND = """
WITH step AS (
    UPDATE runplane_runs
    SET updated_at = $3, lease_expires_at = $4,
        model_calls = model_calls + $5, tool_calls = tool_calls + $6,
        requests = requests + $7, input_tokens = input_tokens + $8,
        output_tokens = output_tokens + $9, total_tokens = total_tokens + $10
    WHERE id = $1 AND owner = $2
    RETURNING id
), journaled AS (
    INSERT INTO runplane_journal (run_id, seq, kind, key, fingerprint, payload, created_at)
    SELECT id, $11, $12, $13, $14, $15, $3 FROM step WHERE $12::varchar IS NOT NULL
), logged AS (
    INSERT INTO runplane_events (run_id, seq, type, payload, created_at)
    SELECT step.id, $16 + e.n - 1, e.type, e.payload, $3
    FROM step, unnest($17::varchar[], $18::text[]) WITH ORDINALITY AS e(type, payload, n)
)
SELECT count(*) FROM step
"""

_HEARTBEAT = """
UPDATE runplane_runs SET lease_expires_at = $3 WHERE id = $1 AND owner = $2 RETURNING 1
"""

_FINISH = """
WITH done AS (
    UPDATE runplane_runs
    SET status = $3, updated_at = $4, finished_at = $4, owner = NULL, lease_expires_at = NULL,
        final_output = $5, error_type = $6, error = $7
    WHERE id = $1 AND owner = $2
    RETURNING id
), logged AS (
    INSERT INTO runplane_events (run_id, seq, type, payload, created_at)
    SELECT done.id, $8 + e.n - 1, e.type, e.payload, $4
    FROM done, unnest($9::varchar[], $10::text[]) WITH ORDINALITY AS e(type, payload, n)
)
SELECT count(*) FROM done
"""

# The event's seq is found in the statement (see sql.release).
_RELEASE = """
WITH done AS (
    UPDATE runplane_runs SET owner = NULL, lease_expires_at = NULL, updated_at = $3
    WHERE id = $1 AND owner = $2
    RETURNING id
), logged AS (
    INSERT INTO runplane_events (run_id, seq, type, payload, created_at)
    SELECT id, coalesce((SELECT max(seq) FROM runplane_events WHERE run_id = $1), 0) + 1,
        $4, $5, $3
    FROM done WHERE $4::varchar IS NOT NULL
)
SELECT count(*) FROM done
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
)
SELECT count(*) FROM created
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
) -> bool:
    now = time.time()
    u = usage if usage is not None else _NO_USAGE
    kind = key = fp = payload = None
    if entry is not None:
        kind, key, fp = entry.kind, entry.key, entry.fingerprint
        payload = dump_json(entry.payload)
    found = await conn.fetchval(
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
    return bool(found == 1)


async def heartbeat(conn: Any, run_id: str, owner: str, lease_seconds: float) -> bool:
    found = await conn.fetchval(_HEARTBEAT, run_id, owner, time.time() + lease_seconds)
    return bool(found == 1)


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
) -> bool:
    found = await conn.fetchval(
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
    return bool(found == 1)


async def release(conn: Any, run_id: str, owner: str, event: NewEvent | None = None) -> None:
    await conn.fetchval(
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
