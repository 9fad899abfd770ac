"""Fixtures for the durable backend's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runplane_durable import DurableBackend, LocalEngine
from support.durable import fresh_pg_database, sqlite_url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    yield from fresh_pg_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def backend(db_url: str) -> DurableBackend:
    return DurableBackend(LocalEngine(db_url))


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> DurableBackend:
    return DurableBackend(LocalEngine(sqlite_url(tmp_path)))
