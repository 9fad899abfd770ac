"""Run claims on PostgreSQL take the run's row with `FOR UPDATE SKIP LOCKED`: a claimer that
meets a row another transaction holds (another claimer taking it) passes over it at once, as a
lost claim (RunLeasedError), instead of waiting for that transaction to end."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from runplane_durable import LocalEngine
from runplane_durable.errors import RunLeasedError
from runplane_durable.records import RunSpec
from support.durable import fresh_pg_database

# Far longer than a claim takes; a claim that waited for the lock would wait until the lock
# holder gives up, which it does only after this.
JOIN_SECONDS = 60.0


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    yield from fresh_pg_database()


def _spec(run_id: str) -> RunSpec:
    return RunSpec(run_id, "echo", {}, "fp", {})


def _claim(url: str, run_id: str) -> BaseException | None:
    """Open the run in a loop of its own (another process's claim); what it raised."""

    async def go() -> None:
        engine = LocalEngine(url)
        try:
            session = await engine.open_run(_spec(run_id), lease_seconds=30)
            await session.release()
            await session.close()
        finally:
            await engine.dispose()

    try:
        asyncio.run(go())
    except BaseException as exc:
        return exc
    return None


def test_a_claim_passes_over_a_run_another_transaction_is_claiming(pg: str) -> None:
    run_id = f"skip-{uuid.uuid4().hex[:8]}"
    assert _claim(pg, run_id) is None  # created, then given back: free to claim

    async def hold_then_claim() -> tuple[bool, BaseException | None]:
        holder = await asyncpg.connect(pg.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            async with holder.transaction():  # left open while the claim runs
                await holder.execute("SELECT 1 FROM runplane_runs WHERE id = $1 FOR UPDATE", run_id)
                outcome: list[BaseException | None] = []
                claimer = threading.Thread(target=lambda: outcome.append(_claim(pg, run_id)))
                claimer.start()
                # Held until the claim returns (or, if it waited for the lock, until we give up).
                await asyncio.to_thread(claimer.join, JOIN_SECONDS)
                waited = claimer.is_alive()
            claimer.join(JOIN_SECONDS)  # the lock is gone now: a waiting claim ends too
            return waited, outcome[0] if outcome else None
        finally:
            await holder.close()

    waited, raised = asyncio.run(hold_then_claim())
    assert not waited, "the claim waited for the row another transaction held"
    assert isinstance(raised, RunLeasedError), raised
    assert raised.fields["run_id"] == run_id
    assert _claim(pg, run_id) is None  # once nobody holds the row, it is claimed as before
