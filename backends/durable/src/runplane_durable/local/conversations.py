"""The transactions of durable sessions (`runplane_durable.DurableSession`): a session's items
in order, each write taken once per key.

Each function is one transaction (the caller's `Database.call`). A session's writes take turns:
on PostgreSQL under a transaction-scoped advisory lock on the session id, on SQLite under the
file's write lock (taken first, for other processes too), so two writers never compute the same
next position.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..serde import load_json
from .schema import session_items, session_writes

__all__ = ["add_items", "clear", "items", "pop_item"]

# The first key of every session write's advisory lock ("rnps"), beside the run watchers'.
SESSION_LOCK_CLASS = 0x726E7073


def _lock(conn: Connection, session_id: str) -> None:
    """Take the session's write turn, as the transaction's first statement."""
    if conn.dialect.name == "postgresql":
        lock = sa.func.pg_advisory_xact_lock(SESSION_LOCK_CLASS, sa.func.hashtext(session_id))
        conn.execute(sa.select(lock))
    else:  # the file's write lock now, before reading the last position (other processes too)
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def items(conn: Connection, session_id: str, limit: int | None) -> list[Any]:
    """The session's items, oldest first; only the latest `limit` when given."""
    query = (
        sa.select(session_items.c.item)
        .where(session_items.c.session_id == session_id)
        .order_by(session_items.c.position.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    found = [load_json(text) for text in conn.execute(query).scalars()]
    conn.commit()
    found.reverse()
    return found


def add_items(conn: Connection, session_id: str, texts: Sequence[str], write_key: str) -> bool:
    """Append `texts` (items as JSON text) after the session's last item, unless a write with
    `write_key` was taken already; whether this one was written."""
    _lock(conn, session_id)
    seen = conn.execute(
        sa.select(session_writes.c.write_key).where(
            session_writes.c.session_id == session_id, session_writes.c.write_key == write_key
        )
    ).first()
    if seen is not None:
        conn.commit()
        return False
    now = time.time()
    last = conn.execute(
        sa.select(sa.func.max(session_items.c.position)).where(
            session_items.c.session_id == session_id
        )
    ).scalar_one()
    first = 0 if last is None else int(last) + 1
    conn.execute(
        session_writes.insert().values(session_id=session_id, write_key=write_key, created_at=now)
    )
    if texts:
        conn.execute(
            session_items.insert(),
            [
                {"session_id": session_id, "position": first + i, "item": text, "created_at": now}
                for i, text in enumerate(texts)
            ],
        )
    conn.commit()
    return True


def pop_item(conn: Connection, session_id: str) -> Any | None:
    """Remove the session's latest item and return it; None when it has none."""
    _lock(conn, session_id)
    row = conn.execute(
        sa.select(session_items.c.position, session_items.c.item)
        .where(session_items.c.session_id == session_id)
        .order_by(session_items.c.position.desc())
        .limit(1)
    ).first()
    if row is None:
        conn.commit()
        return None
    conn.execute(
        session_items.delete().where(
            session_items.c.session_id == session_id, session_items.c.position == row.position
        )
    )
    conn.commit()
    return load_json(row.item)


def clear(conn: Connection, session_id: str) -> None:
    """Remove the session's items and the keys of its writes."""
    _lock(conn, session_id)
    for table in (session_items, session_writes):
        conn.execute(table.delete().where(table.c.session_id == session_id))
    conn.commit()
