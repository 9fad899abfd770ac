"""Paging through `LocalEngine.list_runs` with cursors, for any set of runs: ties in creation
time, ids of any storable text, every page size, on SQLite and PostgreSQL.

The contract tests (test_engine_contract.py) create runs through the protocol, one after the
other; here the rows are written with chosen creation times, so many runs share one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from runplane_durable import LocalEngine
from runplane_durable.local import sql
from runplane_durable.local.schema import runs
from runplane_durable.records import RUN_STATUSES, RunRecord, RunSpec, run_cursor
from sqlalchemy.engine import Connection

# Few distinct times, so most runs tie with another; one far from the rest.
TIMES = st.sampled_from([100.0, 100.5, 101.0, 1_700_000_000.123456])
SUFFIXES = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12
)
RUNS = st.lists(
    st.tuples(SUFFIXES, TIMES, st.sampled_from(RUN_STATUSES)),
    max_size=14,
    unique_by=lambda r: r[0],
)


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(runs.insert(), rows)
    conn.commit()


def _record(run_id: str, agent: str, created_at: float, status: Any) -> RunRecord:
    spec = RunSpec(run_id, agent, {"text": "go"}, "fp", {})
    fresh = sql.new_record(spec, "test:1:x:1", created_at, 30)
    return dataclasses.replace(fresh, status=status)


def test_paging_yields_every_run_once_newest_first(db_url: str) -> None:
    engine = LocalEngine(db_url)
    loop = asyncio.new_event_loop()

    @settings(max_examples=60, deadline=None)
    @given(RUNS, st.integers(1, 6), st.sampled_from([None, *RUN_STATUSES]))
    def pages(made: list[tuple[str, float, str]], size: int, status: Any) -> None:
        # Each example's runs are its own: a fresh agent name, and ids under a fresh prefix.
        agent, prefix = f"agent-{uuid.uuid4().hex}", f"{uuid.uuid4().hex[:8]}/"
        records = [_record(prefix + s, agent, t, st_) for s, t, st_ in made]
        row_dicts = [{**sql.new_row(r), "status": r.status} for r in records]

        async def go() -> list[list[str]]:
            if row_dicts:
                await engine.database.call(_insert, row_dicts)
            seen: list[list[str]] = []
            cursor = None
            while page := await engine.list_runs(
                agent=agent, status=status, limit=size, cursor=cursor
            ):
                assert len(page) <= size
                seen.append([r.id for r in page])
                cursor = run_cursor(page[-1])
            return seen

        seen = loop.run_until_complete(go())
        expected = sorted(
            (r for r in records if status is None or r.status == status),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        assert [i for page in seen for i in page] == [r.id for r in expected]
        assert all(len(page) == size for page in seen[:-1])

    try:
        pages()
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
