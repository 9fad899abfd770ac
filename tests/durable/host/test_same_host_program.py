"""The same host program on `openai`, `durable` (SQLite and PostgreSQL, embedded) and the
third-party `deadline` backend: equal bridged events, equal answers, history held."""

from __future__ import annotations

from typing import Any

import pytest
import runplane_deadline.plugin
from runplane_durable import DurableBackend, LocalEngine
from support.backends import BackendPlugin
from support.host_program import PAID, POLICY, TOOLS, conversation, scripted_model, shape

import runplane
from runplane.host import HostContext, ModelOptions, TurnResult

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run_program(runner: type[runplane.BackendRunner]) -> list[TurnResult]:
    PAID.clear()
    async with HostContext(
        system_prompt="You help.",
        tools=TOOLS,
        options=ModelOptions(model=scripted_model()),
        authority=POLICY,
        backend=runner,
    ) as ctx:
        return await conversation(ctx)


def summary(turns: list[TurnResult]) -> list[Any]:
    return [
        (t.final_output, type(t.error).__name__ if t.error else None, [shape(e) for e in t.events])
        for t in turns
    ]


async def test_the_same_host_program_on_three_backends(db_url: str) -> None:
    engine = LocalEngine(db_url)
    registry = runplane.Registry(group="runplane-none")
    registry.register(BackendPlugin({"durable": lambda: DurableBackend(engine)}), name="durable")
    registry.register(runplane_deadline.plugin, name="deadline")
    results = {}
    try:
        for name in ("openai", "durable", "deadline"):
            if name == "openai":
                registry.register(
                    BackendPlugin({"openai": runplane.default_registry().entry("openai").factory}),
                    name="openai",
                )
            results[name] = await run_program(runplane.runner(name, registry=registry))
            assert PAID == [500], name
        expected = summary(results["openai"])
        assert [o for o, _, _ in expected] == [
            "done: Sunny in Paris",
            "you first asked: What is the weather in Paris?",
            None,
            None,
            "done: paid 500",
            None,
            "done: Not today.",
            "you first asked: What is the weather in Paris?",
        ]
        assert summary(results["durable"]) == expected
        assert summary(results["deadline"]) == expected
        # On the durable backend each turn is a durable run, and a turn continued after its
        # approval is the run that waited, under its id.
        turns = results["durable"]
        waited, continued = turns[3], turns[4]
        assert continued.events[0].run_id == waited.events[0].run_id
        record = await engine.get_run(waited.events[0].run_id)
        assert record is not None
        assert record.status == "completed"
    finally:
        await engine.dispose()
