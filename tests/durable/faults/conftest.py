"""Fixtures of the fault tests: a PostgreSQL cluster of the test's own, to crash and restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.private_pg import PrivatePostgres, private_postgres


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A started cluster only this test uses (never the shared one: stopping that would fail
    everyone else's tests); stopped and removed afterwards."""
    with private_postgres() as cluster:
        yield cluster
