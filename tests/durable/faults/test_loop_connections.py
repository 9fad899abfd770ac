"""PostgreSQL connections belong to the event loop that made them: each is closed when its loop
shuts down, so an engine used under one `asyncio.run` and disposed under another (the worker
tests' fixtures do this) leaves no connection for the garbage collector to warn about."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, LocalEngine, run_id


def _unclosed(record: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in record
        if issubclass(w.category, ResourceWarning) and "unclosed" in str(w.message)
    ]


def _agent() -> Agent[Any]:
    @function_tool
    def look(n: int) -> str:
        return f"seen {n}"

    script = [[function_call("look", {"n": 1}, call_id="c1")], [assistant_message("done")]]
    return Agent(name="loops", tools=[look], model=ScriptedModel(script))


def test_an_engine_disposed_after_its_loop_closed_leaves_no_connection_open(pg_url: str) -> None:
    backend = DurableBackend(LocalEngine(pg_url))

    async def run(rid: str) -> Any:
        with run_id(rid):
            return (await backend.run(_agent(), "x")).final_output

    gc.collect()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # Each asyncio.run has its own loop, so its own pool: two runs, several connections.
        assert asyncio.run(run("loops-1")) == "done"
        assert asyncio.run(run("loops-2")) == "done"
        asyncio.run(backend.engine.dispose())  # from a third loop, as the fixtures do
        gc.collect()
    assert _unclosed(record) == []


def test_a_loop_that_keeps_running_keeps_its_pool(pg_url: str) -> None:
    """Closing with the loop never closes a pool still in use: runs on one loop share it."""
    engine = LocalEngine(pg_url)

    async def go() -> tuple[int, int]:
        backend = DurableBackend(engine)
        with run_id("keeps-1"):
            await backend.run(_agent(), "x")
        first = id(engine.database._postgres.engine())  # type: ignore[union-attr]
        with run_id("keeps-2"):
            await backend.run(_agent(), "x")
        second = id(engine.database._postgres.engine())  # type: ignore[union-attr]
        await engine.dispose()
        return first, second

    first, second = asyncio.run(go())
    assert first == second
