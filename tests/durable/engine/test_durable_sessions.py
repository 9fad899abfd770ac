"""`DurableSession` on an embedded engine: any JSON items come back as written, in order, a
limit takes the latest; it finds its database as runs do; a read-only engine refuses its writes.
(Every engine's side is in test_engine_contract.py.)
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from agents.memory import SessionSettings
from hypothesis import given, settings
from hypothesis import strategies as st
from runplane_durable import DatabaseError, DurableSession, LocalEngine
from support.durable import sqlite_url

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
ITEMS = st.dictionaries(st.text(min_size=1), JSON, max_size=4)


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.lists(ITEMS, max_size=4), min_size=1, max_size=4),
    limit=st.none() | st.integers(0, 20),
)
def test_items_come_back_as_written_in_order(
    batches: list[list[dict[str, Any]]], limit: int | None
) -> None:
    with tempfile.TemporaryDirectory() as where:

        async def go() -> None:
            engine = LocalEngine(sqlite_url(Path(where)))
            session = DurableSession("s", engine=engine)
            for batch in batches:
                await session.add_items(batch)  # type: ignore[arg-type]
            everything = [item for batch in batches for item in batch]
            assert await session.get_items() == everything
            latest = everything[max(0, len(everything) - limit) :] if limit else []
            assert await session.get_items(limit) == (everything if limit is None else latest)
            await engine.dispose()

        asyncio.run(go())


def test_session_settings_limit_reads_and_pop_and_clear(tmp_path: Path) -> None:
    async def go() -> None:
        engine = LocalEngine(sqlite_url(tmp_path))
        session = DurableSession("s", engine=engine, session_settings=SessionSettings(limit=2))
        await session.add_items([{"n": i} for i in range(5)])  # type: ignore[misc]
        assert await session.get_items() == [{"n": 3}, {"n": 4}]
        assert await session.get_items(limit=3) == [{"n": 2}, {"n": 3}, {"n": 4}]
        assert await session.pop_item() == {"n": 4}
        await session.clear_session()
        assert await session.get_items() == []
        assert await session.pop_item() is None
        await engine.dispose()

    asyncio.run(go())


def test_without_an_engine_it_uses_the_database_runs_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNPLANE_SERVER_URL", raising=False)
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", sqlite_url(tmp_path))

    async def go() -> None:
        await DurableSession("s").add_items([{"n": 1}])  # type: ignore[list-item]
        engine = LocalEngine(sqlite_url(tmp_path))
        assert await DurableSession("s", engine=engine).get_items() == [{"n": 1}]
        assert "DurableSession('s'" in repr(DurableSession("s", engine=engine))
        await engine.dispose()

    asyncio.run(go())


def test_a_read_only_engine_reads_a_session_and_refuses_to_write_it(tmp_path: Path) -> None:
    async def go() -> None:
        writer = LocalEngine(sqlite_url(tmp_path))
        await writer.add_session_items("s", [{"n": 1}], write_key="k")
        await writer.dispose()
        reader = LocalEngine(sqlite_url(tmp_path), read_only=True)
        assert await reader.session_items("s") == [{"n": 1}]
        for write in (
            reader.add_session_items("s", [{"n": 2}], write_key="k2"),
            reader.pop_session_item("s"),
            reader.clear_session("s"),
        ):
            with pytest.raises(DatabaseError, match="sessions are written"):
                await write
        await reader.dispose()

    asyncio.run(go())
