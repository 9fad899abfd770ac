"""Fixtures of the worker tests: the jobs program in a temp dir, on SQLite or a fresh PostgreSQL
database (fresh per test: workers take any run of their agent, so no test may see another's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.durable import fresh_pg_database, sqlite_url
from support.durable_server import running_server
from support.workers import Jobs


@pytest.fixture(params=["sqlite", "postgresql"])
def jobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Jobs]:
    if request.param == "sqlite":
        made = Jobs(tmp_path, sqlite_url(tmp_path))
        try:
            yield made
        finally:
            made.cleanup()
        return
    for url in fresh_pg_database():
        made = Jobs(tmp_path, url)
        try:
            yield made
        finally:
            made.cleanup()


@pytest.fixture
def sqlite_jobs(tmp_path: Path) -> Iterator[Jobs]:
    made = Jobs(tmp_path, sqlite_url(tmp_path))
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def served_jobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Jobs]:
    """The jobs program in server mode: a `runplane server` on the database, every process
    of the test pointed at it (RUNPLANE_SERVER_URL, `--server`)."""
    databases = [sqlite_url(tmp_path)] if request.param == "sqlite" else fresh_pg_database()
    for url in databases:
        with running_server(url, tmp_path / "server.log") as server:
            made = Jobs(tmp_path, url, server=server.url)
            try:
                yield made
            finally:
                made.cleanup()


@pytest.fixture(params=["sqlite", "postgresql", "server"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a test's runs and tool tasks are: a SQLite file, a fresh PostgreSQL database, or
    (server mode) a `runplane server` on a SQLite file, by its URL; every engine of the test,
    in process or not, is `open_engine(store_url)`."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    elif request.param == "postgresql":
        yield from fresh_pg_database()
    else:
        with running_server(sqlite_url(tmp_path), tmp_path / "server.log") as server:
            yield server.url
