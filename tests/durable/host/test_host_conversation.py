"""A host context on the durable backend keeps its conversation in the durable database: another
host context (another process, after a crash) with the same conversation id goes on with it."""

from __future__ import annotations

import pytest
from runplane_durable import DurableBackend, DurableSession, LocalEngine
from support.backends import BackendPlugin
from support.host_program import TOOLS, scripted_model, user_texts

import runplane
from runplane.host import HostContext, ModelOptions

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_conversation_is_the_durable_backends(db_url: str) -> None:
    engine = LocalEngine(db_url)
    registry = runplane.Registry(group="runplane-none")
    registry.register(BackendPlugin({"durable": lambda: DurableBackend(engine)}), name="durable")
    runner = runplane.runner("durable", registry=registry)
    try:
        first_model = scripted_model()
        async with HostContext(
            tools=TOOLS,
            options=ModelOptions(model=first_model),
            backend=runner,
            conversation_id="support-7",
        ) as ctx:
            assert isinstance(ctx.session, DurableSession)
            assert (await ctx.run("What is the weather in Paris?")).ok
        later_model = scripted_model()
        async with HostContext(
            tools=TOOLS,
            options=ModelOptions(model=later_model),
            backend=runner,
            conversation_id="support-7",
        ) as ctx:
            turn = await ctx.run("What was my first question?")
        assert turn.final_output == "you first asked: What is the weather in Paris?"
        assert user_texts(later_model.calls[0].input) == [
            "What is the weather in Paris?",
            "What was my first question?",
        ]
    finally:
        await engine.dispose()


async def test_a_session_the_host_passes_in_keeps_its_own_turns(db_url: str) -> None:
    """A host's own session (here an in-memory SQLiteSession) holds a history the backend knows
    nothing of: its turns are not the backend's numbered turns, so a second host context with a
    fresh session of the same id starts at turn 0 and runs as a new conversation."""
    from agents import SQLiteSession

    engine = LocalEngine(db_url)
    registry = runplane.Registry(group="runplane-none")
    registry.register(BackendPlugin({"durable": lambda: DurableBackend(engine)}), name="durable")
    runner = runplane.runner("durable", registry=registry)
    try:
        for prompt in ("What is the weather in Paris?", "What is the weather in Rome?"):
            async with HostContext(
                tools=TOOLS,
                options=ModelOptions(model=scripted_model()),
                backend=runner,
                session=SQLiteSession("mine-1"),
            ) as ctx:
                assert (ctx.next_turn, ctx.unfinished_turn) == (0, None)
                assert (await ctx.run(prompt)).ok
    finally:
        await engine.dispose()
