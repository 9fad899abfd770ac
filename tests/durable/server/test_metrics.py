"""GET /metrics: the store's counts in Prometheus' text format, counted by the database (so two
servers on one database say the same), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from runplane_durable import LocalEngine
from runplane_durable.local import sql
from runplane_durable.local.schema import runs, tasks
from runplane_durable.records import JournalEntry, NewEvent, RunSpec
from runplane_durable.server.app import create_app
from sqlalchemy.engine import Connection
from support.served_app import served

Writer = Any


def _task(n: int, status: str, queue: str, owner: str | None = None) -> dict[str, Any]:
    now = time.time()
    return {
        "id": f"task-{n}",
        "run_id": "queued-run",
        "call_key": f"0:call-{n}",
        "queue": queue,
        "tool_name": "lookup",
        "call_id": f"call-{n}",
        "arguments": "{}",
        "context": None,
        "status": status,
        "attempts": 0,
        "max_attempts": 3,
        "timeout": None,
        "retry_delay": 1.0,
        "owner": owner,
        "lease_expires_at": now + 60 if owner else None,
        "available_at": now,
        "result": None,
        "error": None,
        "created_at": now,
        "updated_at": now,
    }


def _insert(
    conn: Connection, run_rows: list[dict[str, Any]], task_rows: list[dict[str, Any]]
) -> None:
    conn.execute(runs.insert(), run_rows)
    conn.execute(tasks.insert(), task_rows)
    conn.commit()


def _step(kind: str, seconds: Any) -> NewEvent:
    payload = {"ordinal": 0} if kind == "model_call" else {"name": "lookup"}
    if seconds is not None:
        payload["seconds"] = seconds
    return NewEvent(kind, payload)


@pytest.fixture(scope="module")
def seeded(store: str, writer: Writer) -> Iterator[str]:
    """The store holding known runs, steps, leases and queues; one run held by an open session."""
    model, tool = JournalEntry("model", "1", "fp", {}), JournalEntry("tool", "0:c", None, {})
    writer.run(
        "timed",
        journal=[model, JournalEntry("model", "2", "fp", {}), tool],
        events=[_step("model_call", 0.003), _step("model_call", 0.2), _step("tool_call", 7)],
    )
    writer.run("old", events=[_step("model_call", None), _step("tool_call", "slow")])
    writer.run("broke", status="failed")
    queued = dataclasses.replace(
        sql.new_record(RunSpec("queued-run", "echo", {}, "fp", {}), "x:1:y:1", time.time(), 30),
        status="queued",
        owner=None,
        lease_expires_at=None,
    )
    row = {**sql.new_row(queued), "queue": "q1"}
    tasks_rows = [
        _task(1, "pending", "tools"),
        _task(2, "pending", "tools"),
        _task(3, "pending", "gpu"),
        _task(4, "running", "tools", owner="w:2:z:1"),
        _task(5, "completed", "tools"),
    ]
    loop = asyncio.new_event_loop()
    engine = LocalEngine(store)
    loop.run_until_complete(engine.database.call(_insert, [row], tasks_rows))
    held = loop.run_until_complete(
        engine.open_run(RunSpec("held", "echo", {}, "fp", {}), lease_seconds=60)
    )
    try:
        yield store
    finally:
        loop.run_until_complete(held.release())
        loop.run_until_complete(held.close())
        loop.run_until_complete(engine.dispose())
        loop.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_metrics_count_the_store(seeded: str) -> None:
    with served(create_app(LocalEngine(seeded))) as url:
        response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("runplane_runs", status="completed") == 2
    assert value("runplane_runs", status="failed") == 1
    assert value("runplane_runs", status="running") == 1
    assert value("runplane_runs", status="queued") == 1
    assert value("runplane_runs", status="cancelled") == 0
    assert value("runplane_journal_steps_total", kind="model") == 2
    assert value("runplane_journal_steps_total", kind="tool") == 1
    # From the events' `seconds`: 0.003 and 0.2 for the model, 7 for the tool; the old event
    # without seconds and the odd one are passed over.
    bucket = "runplane_step_latency_seconds_bucket"
    assert value(bucket, kind="model", le="0.005") == 1
    assert value(bucket, kind="model", le="0.25") == 2
    assert value(bucket, kind="model", le="+Inf") == 2
    assert value("runplane_step_latency_seconds_count", kind="model") == 2
    assert value("runplane_step_latency_seconds_sum", kind="model") == pytest.approx(0.203)
    assert value(bucket, kind="tool", le="5.0") == 0
    assert value(bucket, kind="tool", le="10.0") == 1
    assert value("runplane_step_latency_seconds_sum", kind="tool") == 7
    assert value("runplane_leases_held", holder="run") == 1
    assert value("runplane_leases_held", holder="task") == 1
    assert value("runplane_queue_depth", queue="q1", what="run") == 1
    assert value("runplane_queue_depth", queue="tools", what="task") == 2
    assert value("runplane_queue_depth", queue="gpu", what="task") == 1


def test_two_servers_on_one_database_report_the_same(seeded: str) -> None:
    with (
        served(create_app(LocalEngine(seeded))) as one,
        served(create_app(LocalEngine(seeded))) as two,
    ):
        first = httpx.get(f"{one}/metrics", timeout=30).text
        second = httpx.get(f"{two}/metrics", timeout=30).text
    assert first == second
    assert "runplane_runs" in first


def test_an_engine_that_cannot_count_is_a_501(seeded: str) -> None:
    class Remote:  # an engine without `measure`, as a client of another server would be
        def describe(self) -> str:
            return "runplane server at http://elsewhere"

        async def dispose(self) -> None:
            pass

    with served(create_app(Remote())) as url:  # type: ignore[arg-type]
        response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 501
    assert "scrape the server that has the database" in response.json()["error"]["message"]


@pytest.mark.parametrize("buckets", [(1.0, 0.5), (0.1, 0.1), (float("inf"),), (float("nan"),)])
def test_latency_buckets_must_be_finite_and_ascending(
    seeded: str, buckets: tuple[float, ...]
) -> None:
    async def go() -> None:
        engine = LocalEngine(seeded)
        with pytest.raises(ValueError, match="finite and ascending"):
            await engine.measure(buckets=buckets)
        await engine.dispose()

    asyncio.run(go())
