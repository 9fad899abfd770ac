"""The same host program on `openai`, `durable` (SQLite and PostgreSQL, embedded) and the
third-party `deadline` backend: equal bridged events, equal answers, history held."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runplane_durable import DurableBackend, LocalEngine
from support.backends import BackendPlugin
from support.host_program import PAID, POLICY, TOOLS, conversation, scripted_model, shape

import runplane
from runplane.bridge import HostEvent
from runplane.host import HostContext, ModelOptions, TurnResult

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class HostEventObserver:
    """A plugin that hears every run's host events through the `runplane_host_event` hook."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, HostEvent]] = []

    @runplane.hookimpl
    def runplane_host_event(self, run: runplane.RunInfo, event: HostEvent) -> None:
        self.seen.append((run.run_id, event))


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


THIRD_PARTY_SRC = Path(__file__).parents[2] / "third_party_backend" / "src"


async def test_the_same_host_program_on_three_backends(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The third party's backend, registered from its source tree as an application would.
    monkeypatch.syspath_prepend(str(THIRD_PARTY_SRC))
    import runplane_deadline.plugin  # type: ignore[import-not-found]

    engine = LocalEngine(db_url)
    registry = runplane.Registry(group="runplane-none")
    registry.register(BackendPlugin({"durable": lambda: DurableBackend(engine)}), name="durable")
    registry.register(runplane_deadline.plugin, name="deadline")
    observer = HostEventObserver()
    registry.register(observer, name="observer")
    results = {}
    try:
        for name in ("openai", "durable", "deadline"):
            if name == "openai":
                registry.register(
                    BackendPlugin({"openai": runplane.default_registry().entry("openai").factory}),
                    name="openai",
                )
            observer.seen.clear()
            results[name] = await run_program(runplane.runner(name, registry=registry))
            assert PAID == [500], name
            # The hook heard what the host was told, on every backend.
            told = [e for t in results[name] for e in t.events]
            assert [shape(e) for _, e in observer.seen] == [shape(e) for e in told], name
            assert all(e.run_id == run_id for run_id, e in observer.seen)
            # ... and named the runs alike, by their durable ids on the durable backend, a turn
            # continued after its approval included: the waiting run, under its id.
            heard = iter(e for _, e in observer.seen)
            for turn in results[name]:
                for event, hook_event in zip(turn.events, heard, strict=False):
                    assert hook_event == event, name
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
