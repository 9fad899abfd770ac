"""Approvals on the database: storing a run's snapshot sealed, deciding its calls, verifying both.

A run that stops for approval is stored with the SDK's `RunState` JSON and the calls it waits
on, sealed with HMAC-SHA256 under the database's own key (`runplane_keys`, made once with the
schema). Each decision is sealed as it is written. Reading a snapshot back verifies every seal
here, in the engine, so the key never leaves it: a snapshot or a decision changed by hand, or
copied from another database, is refused (`RunStateInvalidError`), and no tool runs on it.
Like `sql.py`, every function is one synchronous transaction on a SQLAlchemy connection.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import lazy_errors as errors
from ..events import ApprovalDecided
from ..records import Approval, NewEvent, RunRecord, Snapshot
from ..serde import dump_json, load_json
from ..session import Fenced
from . import sql
from .schema import approvals, keys, run_states, runs

__all__ = [
    "SEAL_KEY",
    "decide",
    "ensure_key",
    "interrupt",
    "list_approvals",
    "load_snapshot",
]

SEAL_KEY = "seal"
# What a run must be for a decision to reach it: waiting, or resuming on earlier decisions.
_DECIDABLE = ("awaiting_approval", "running")


def ensure_key(conn: Connection) -> None:
    """Create the database's sealing key if it has none (inside `create_schema`'s transaction,
    under its lock: one key, once)."""
    found = conn.execute(sa.select(keys.c.name).where(keys.c.name == SEAL_KEY)).first()
    if found is None:
        conn.execute(
            keys.insert().values(
                name=SEAL_KEY, secret=secrets.token_hex(32), created_at=time.time()
            )
        )


def _key(conn: Connection) -> bytes | None:
    secret = conn.execute(sa.select(keys.c.secret).where(keys.c.name == SEAL_KEY)).scalar()
    return None if secret is None else bytes.fromhex(secret)


def _mac(key: bytes, what: str, data: Any) -> str:
    text = json.dumps([what, data], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _request(a: Approval) -> list[Any]:
    return [a.call_id, a.tool_name, a.arguments, a.agent_name, a.key]


def _snapshot_seal(key: bytes, run_id: str, state: str, model_calls: int, calls: list[Any]) -> str:
    return _mac(key, "snapshot", [run_id, model_calls, state, calls])


def _decision_seal(key: bytes, run_id: str, a: Approval) -> str:
    decision = [a.status, a.always, a.message, a.decided_at, a.decided_by]
    return _mac(key, "decision", [run_id, _request(a), decision])


def _approval(row: Any) -> Approval:
    return Approval(
        call_id=row.call_id,
        tool_name=row.tool_name,
        arguments=row.arguments,
        agent_name=row.agent_name,
        key=row.key,
        status=row.status,
        always=bool(row.always),
        message=row.message,
        requested_at=row.requested_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        policy=row.policy,
    )


def _rows(conn: Connection, run_id: str) -> list[Any]:
    query = (
        sa.select(approvals)
        .where(approvals.c.run_id == run_id)
        .order_by(approvals.c.position, approvals.c.call_id)
    )
    return list(conn.execute(query).all())


def interrupt(
    conn: Connection,
    run_id: str,
    owner: str,
    event_seq: int,
    new_events: list[NewEvent],
    snapshot: Snapshot,
) -> Fenced:
    """The `Interrupt` write: the run `awaiting_approval` (no finished time, no lease), its
    snapshot sealed in place of any earlier one, its calls added (a call already known keeps
    its row and decision), its events logged; None (nothing written) if the run is not ours."""
    now = time.time()
    result = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.owner == owner)
        .values(
            status="awaiting_approval",
            updated_at=now,
            finished_at=None,
            owner=None,
            lease_expires_at=None,
            final_output=None,
            error_type=None,
            error=None,
            cancel_requested=None,
        )
    )
    if result.rowcount != 1:
        conn.rollback()
        return None
    key = _key(conn)
    if key is None:  # pragma: no cover - create_schema makes the key with the v3 tables
        conn.rollback()
        raise errors.DatabaseError("this database has no sealing key; open it read-write once")
    state = dump_json(snapshot.state)
    calls = [_request(a) for a in snapshot.approvals]
    conn.execute(run_states.delete().where(run_states.c.run_id == run_id))
    conn.execute(
        run_states.insert().values(
            run_id=run_id,
            state=state,
            model_calls=snapshot.model_calls,
            calls=dump_json([a.call_id for a in snapshot.approvals]),
            seal=_snapshot_seal(key, run_id, state, snapshot.model_calls, calls),
            created_at=now,
        )
    )
    known = {row.call_id for row in _rows(conn, run_id)}
    position = len(known)
    for a in snapshot.approvals:
        if a.call_id in known:
            continue
        conn.execute(
            approvals.insert().values(
                run_id=run_id,
                call_id=a.call_id,
                position=position,
                tool_name=a.tool_name,
                arguments=a.arguments,
                agent_name=a.agent_name,
                key=a.key,
                status="pending",
                always=False,
                requested_at=now,
                policy=a.policy,
            )
        )
        known.add(a.call_id)
        position += 1
    event_seq = max(event_seq, sql.max_event_seq_in(conn, run_id) + 1)
    sql.insert_events(conn, run_id, event_seq, new_events, now)
    conn.commit()
    return None, event_seq


def list_approvals(conn: Connection, run_id: str) -> list[Approval] | None:
    """The run's approvals in the order requested; None for an unknown run."""
    exists = sql.get_run_row(conn, run_id) is not None
    found = [_approval(r) for r in _rows(conn, run_id)] if exists else None
    conn.commit()
    return found


def decide(
    conn: Connection,
    run_id: str,
    call_id: str | None,
    approve: bool,
    always: bool,
    message: str | None,
    by: str | None,
) -> tuple[RunRecord, list[Approval]]:
    """Decide the call (None: every pending one), sealed, with an `approval_decided` event for
    each call it changed; the same decision again changes nothing. Raises the errors
    `Engine.decide` names, having written nothing."""
    wanted = "approved" if approve else "rejected"
    decision = "approve" if approve else "reject"
    try:
        row = sql.get_run_row(conn, run_id)
        if row is None:
            raise errors.RunNotFoundError(run_id=run_id)
        run = sql.record(row)
        if run.status not in _DECIDABLE:
            raise errors.ApprovalConflictError(
                run_id=run_id, call_id=None, status=run.status, decision=decision
            )
        stored = [_approval(r) for r in _rows(conn, run_id)]
        pending = [a.call_id for a in stored if not a.decided]
        if call_id is None:
            targets = [a for a in stored if not a.decided]
            if not targets:
                raise errors.ApprovalNotFoundError(run_id=run_id, call_id=None, pending=[])
        else:
            targets = [a for a in stored if a.call_id == call_id]
            if not targets:
                raise errors.ApprovalNotFoundError(run_id=run_id, call_id=call_id, pending=pending)
        for a in targets:
            if a.decided and a.status != wanted:
                raise errors.ApprovalConflictError(
                    run_id=run_id, call_id=a.call_id, status=a.status, decision=decision
                )
        changing = [a for a in targets if not a.decided]
        key = _key(conn)
        now = time.time()
        decided_events: list[NewEvent] = []
        for a in changing:
            made = Approval(
                **{
                    **a.to_json(),
                    "status": wanted,
                    "always": always,
                    "message": None if approve else message,
                    "decided_at": now,
                    "decided_by": by,
                }
            )
            assert key is not None  # a run with approvals was written by a v3 engine
            updated = conn.execute(
                approvals.update()
                .where(
                    approvals.c.run_id == run_id,
                    approvals.c.call_id == a.call_id,
                    approvals.c.status == "pending",
                )
                .values(
                    status=made.status,
                    always=made.always,
                    message=made.message,
                    decided_at=made.decided_at,
                    decided_by=made.decided_by,
                    seal=_decision_seal(key, run_id, made),
                )
            )
            if updated.rowcount != 1:  # decided meanwhile by another process: look again
                conn.rollback()
                return decide(conn, run_id, call_id, approve, always, message, by)
            event = ApprovalDecided(a.call_id, a.key, approve, always, made.message, by)
            decided_events.append(NewEvent(event.TYPE, event.to_payload()))
        if decided_events:
            first = sql.max_event_seq_in(conn, run_id) + 1
            sql.insert_events(conn, run_id, first, decided_events, now)
            conn.execute(runs.update().where(runs.c.id == run_id).values(updated_at=now))
            run = sql.record(sql.get_run_row(conn, run_id))
        after = [_approval(r) for r in _rows(conn, run_id)]
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return run, after


def load_snapshot(conn: Connection, run_id: str) -> Snapshot | None:
    """The run's snapshot with its approvals as stored now, every seal verified; None if it
    never stopped for approval. RunStateInvalidError if a seal does not verify."""
    try:
        row = conn.execute(sa.select(run_states).where(run_states.c.run_id == run_id)).first()
        if row is None:
            conn.commit()
            return None
        key = _key(conn)
        rows = _rows(conn, run_id)
    finally:
        conn.rollback()
    if key is None:
        raise errors.RunStateInvalidError(
            run_id=run_id, problem="the database has no sealing key to verify its snapshot with"
        )
    stored = [_approval(r) for r in rows]
    try:
        state = load_json(row.state)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise errors.RunStateInvalidError(run_id=run_id, problem="its snapshot is not JSON")
    # The snapshot's seal covers the calls it waits on: those are the rows it wrote (or kept).
    by_call = {a.call_id: a for a in stored}
    try:
        waiting = [c for c in load_json(row.calls) if isinstance(c, str)]
    except (ValueError, TypeError):
        waiting = []
    calls = [_request(by_call[c]) for c in waiting if c in by_call]
    expected = _snapshot_seal(key, run_id, row.state, int(row.model_calls), calls)
    if len(calls) != len(waiting) or not hmac.compare_digest(expected, row.seal):
        raise errors.RunStateInvalidError(
            run_id=run_id,
            problem="its snapshot's seal does not verify (the state or the calls it waits on "
            "were changed, or it was sealed by another database)",
        )
    for a, r in zip(stored, rows, strict=True):
        if a.decided and (
            r.seal is None or not hmac.compare_digest(_decision_seal(key, run_id, a), r.seal)
        ):
            raise errors.RunStateInvalidError(
                run_id=run_id,
                problem=f"the decision on call {a.call_id!r} does not verify (changed by hand, "
                "or copied from another database)",
            )
    pending = [by_call[c] for c in waiting]
    return Snapshot(state=state, model_calls=int(row.model_calls), approvals=pending)
