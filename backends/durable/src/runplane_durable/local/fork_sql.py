"""Forking a run on the database: the new run, its copied journal and first events, one
transaction. Like `sql.py`, a synchronous SQLAlchemy Core transaction on one connection."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .. import lazy_errors as errors
from ..events import RunQueued
from ..forks import fork_of
from ..records import EventRecord, JournalRecord, NewEvent, RunRecord
from ..serde import dump_json, load_json
from . import sql
from .schema import events, journal, runs

__all__ = ["fork_run"]


def _events(conn: Connection, run_id: str) -> list[EventRecord]:
    rows = conn.execute(
        sa.select(events).where(events.c.run_id == run_id).order_by(events.c.seq)
    ).all()
    return [EventRecord(r.run_id, r.seq, r.type, load_json(r.payload), r.created_at) for r in rows]


def _journal(conn: Connection, run_id: str) -> list[JournalRecord]:
    rows = conn.execute(
        sa.select(journal).where(journal.c.run_id == run_id).order_by(journal.c.seq)
    ).all()
    return [
        JournalRecord(r.kind, r.key, r.fingerprint, load_json(r.payload), seq=r.seq) for r in rows
    ]


def fork_run(
    conn: Connection, source_id: str, at: int, run_id: str, queue: str | None
) -> tuple[bool, RunRecord] | None:
    """Create run `run_id` as a fork of `source_id` at step `at` (`forks.fork_of`), queued on
    `queue`, with the source's journal before `at` copied: whether it was created, and the run.
    An existing `run_id` is returned as it is if it is that very fork; else
    RunInputMismatchError. None for an unknown source, ForkStepError for a step outside its
    steps; nothing is written then."""
    try:
        row = sql.get_run_row(conn, source_id)
        if row is None:
            conn.rollback()
            return None
        fork = fork_of(
            sql.record(row),
            _events(conn, source_id),
            _journal(conn, source_id),
            at=at,
            run_id=run_id,
            queue=queue,
        )
    except BaseException:
        conn.rollback()
        raise
    now = time.time()
    new = sql.new_record(fork.spec, None, now, None)
    first: list[NewEvent] = [NewEvent(fork.forked.TYPE, fork.forked.to_payload())]
    if queue is not None:
        queued = RunQueued(queue, fork.spec.agent_ref)
        first.append(NewEvent(queued.TYPE, queued.to_payload()))
    try:
        conn.execute(sa.insert(runs), [sql.new_row(new)])
        if fork.entries:
            conn.execute(
                sa.insert(journal),
                [
                    {
                        "run_id": run_id,
                        "seq": seq,
                        "kind": e.kind,
                        "key": e.key,
                        "fingerprint": e.fingerprint,
                        "payload": dump_json(e.payload),
                        "created_at": now,
                    }
                    for seq, e in enumerate(fork.entries, start=1)
                ],
            )
        sql.insert_events(conn, run_id, 1, first, now)
        conn.commit()
    except IntegrityError:
        conn.rollback()
    else:
        return True, new
    existing = sql.get_run_row(conn, run_id)
    conn.commit()
    if existing is None:  # deleted between the insert that found it and now: try once more
        return fork_run(conn, source_id, at, run_id, queue)
    found = sql.record(existing)
    if found.options.get("forked_from") != fork.spec.options["forked_from"] or (
        found.input_fingerprint != fork.spec.input_fingerprint
    ):
        raise errors.RunInputMismatchError(run_id=run_id, what_changed="fork")
    return False, found
