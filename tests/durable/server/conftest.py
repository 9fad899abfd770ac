"""Fixtures for `runplane server`'s tests: a store on SQLite and on PostgreSQL, the app serving
it under a real uvicorn, and a way to write runs into it as a program would."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from runplane_durable import LocalEngine
from runplane_durable.records import JournalEntry, NewEvent, RunRecord, RunSpec
from runplane_durable.server.app import ServerSettings, create_app
from support.durable import fresh_pg_database, sqlite_url
from support.served_app import served


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database URL, the module's own."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path_factory.mktemp("server"))
    else:
        yield from fresh_pg_database()


@pytest.fixture(scope="module")
def api(store: str) -> Iterator[str]:
    """The root URL of a server on `store`, with no token (loopback)."""
    with served(create_app(LocalEngine(store), ServerSettings())) as url:
        yield url


@pytest.fixture
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=30) as c:
        yield c


@dataclass
class Writer:
    """Writes runs into a store as a program would, through a `LocalEngine` of its own."""

    url: str

    def run(
        self,
        run_id: str | None = None,
        *,
        agent: str = "echo",
        status: Any = "completed",
        events: Sequence[NewEvent] = (),
        journal: Sequence[JournalEntry] = (),
    ) -> RunRecord:
        """A run with `journal` and `events` written, then finished as `status` ("running":
        left resumable, its lease given back)."""
        run_id = run_id or f"srv-{uuid.uuid4().hex[:10]}"

        async def go() -> RunRecord:
            engine = LocalEngine(self.url)
            try:
                spec = RunSpec(run_id, agent, {"text": "go"}, f"fp-{agent}", {})
                session = await engine.open_run(spec, lease_seconds=30)
                for entry in journal:
                    await session.append(journal=entry)
                if events:
                    await session.append(events=list(events))
                if status == "running":
                    await session.release()
                else:
                    await session.finish(
                        status,
                        final_output={"json": "done"} if status == "completed" else None,
                        error=RuntimeError("broke") if status == "failed" else None,
                    )
                await session.close()
                return await engine.get_run(run_id)
            finally:
                await engine.dispose()

        return asyncio.run(go())


@pytest.fixture(scope="module")
def writer(store: str) -> Writer:
    return Writer(store)
