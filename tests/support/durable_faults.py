"""Faults injected into a live durable run from inside it: a stolen lease, raw SQL, sizes.

The durable tests' other helpers start runs; these reach into the run's database while it runs,
the way another process or a broken database would.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from runplane_durable import DurableBackend, LocalEngine
from runplane_durable.local import sql
from sqlalchemy.engine import Connection

import runplane

__all__ = ["OTHER", "Routed", "local_engine", "payload_chars", "sql_call", "steal_lease"]

OTHER = "elsewhere:1:other"


def local_engine(backend: DurableBackend) -> LocalEngine:
    engine = backend.engine
    assert isinstance(engine, LocalEngine)
    return engine


async def steal_lease(backend: DurableBackend, run_id: str) -> None:
    """Another process takes the run over, as if this one had been given up for dead."""
    engine = local_engine(backend)
    holder = (await engine.get_run(run_id)).owner
    taken = await engine.database.call(sql.take_lease, run_id, OTHER, 30.0, holder)
    assert taken, f"run {run_id!r} could not be taken from {holder}"


async def sql_call(backend: DurableBackend, statement: str, **params: Any) -> Any:
    """One statement in its own transaction; the rows it returns, if any."""

    def run(conn: Connection) -> Any:
        result = conn.execute(sa.text(statement), params)
        rows = result.all() if result.returns_rows else None
        conn.commit()
        return rows

    return await local_engine(backend).database.call(run)


async def payload_chars(backend: DurableBackend, run_id: str) -> dict[str, int]:
    """How many characters of payload the run's journal and event log hold."""
    sizes = {}
    for table in ("runplane_journal", "runplane_events"):
        rows = await sql_call(
            backend,
            f"SELECT coalesce(sum(length(payload)), 0) FROM {table} WHERE run_id = :rid",
            rid=run_id,
        )
        sizes[table.removeprefix("runplane_")] = int(rows[0][0])
    return sizes


class Routed:
    """`runplane.install(name)` for a backend a test built: unchanged `agents.Runner` calls (and
    the SDK's nested runs) go through it."""

    def __init__(self, backend: DurableBackend, name: str) -> None:
        self.backend = backend
        self.name = name
        self._plugin_name: str | None = None
        self._installation: Any = None

    @runplane.hookimpl
    def runplane_backends(self) -> dict[str, Any]:
        return {self.name: lambda: self.backend}

    def __enter__(self) -> Routed:
        self._plugin_name = runplane.register_plugin(self, name=f"{self.name}-plugin")
        self._installation = runplane.install(self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        self._installation.__exit__(None, None, None)
        runplane.default_registry().unregister(self._plugin_name)
