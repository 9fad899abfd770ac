"""A durable run's `session=` steps, in one process: a write cut off between its journal entry
and the session is made (or found made) on resume, exactly once; a session changed outside the
run, or read differently, is a divergence saying so; a finished run's replay never touches the
session. (The kill -9 tests with real processes are in test_session_crash.py.)
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, RunConfig, SQLiteSession, function_tool
from agents.memory import SessionSettings
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import (
    DurableBackend,
    DurableSession,
    LocalEngine,
    ReplayDivergenceError,
    conversation_turn_id,
    run_id,
)
from runplane_durable.records import RunSpec
from runplane_durable.runtime import intercept
from runplane_durable.runtime.active import ACTIVE, ActiveRun
from runplane_durable.runtime.session_steps import digest


class Cut(Exception):
    """Stands for the process dying around a session write."""


class CutSession(SQLiteSession):
    """An SQLiteSession that dies at its `cut_at`-th add, before or after making it."""

    def __init__(self, path: Path, *, cut_at: int | None = None, after: bool = False) -> None:
        super().__init__("conversation", str(path))
        self.cut_at, self.after = cut_at, after
        self.adds = self.gets = 0

    async def get_items(self, limit: int | None = None) -> list[Any]:
        self.gets += 1
        return await super().get_items(limit)

    async def add_items(self, items: list[Any]) -> None:
        self.adds += 1
        cut = self.adds == self.cut_at
        if cut and not self.after:
            raise Cut("before the write")
        await super().add_items(items)
        if cut:
            raise Cut("after the write")


@function_tool
def lookup(n: int) -> str:
    """Look it up."""
    return f"found {n}"


def agent() -> Agent[Any]:
    script = [[function_call("lookup", {"n": 1}, call_id="c1")], [assistant_message("done")]]
    return Agent(name="looker", tools=[lookup], model=ScriptedModel(script * 3))


def engine(tmp_path: Path) -> LocalEngine:
    return LocalEngine(f"sqlite:///{tmp_path / 'runs.db'}")


async def _run(backend: DurableBackend, rid: str, session: Any, **kwargs: Any) -> Any:
    with run_id(rid):
        return (await backend.run(agent(), "hello", session=session, **kwargs)).final_output


def _reference(tmp_path: Path) -> list[Any]:
    async def go() -> list[Any]:
        backend = DurableBackend(engine(tmp_path / "ref"))
        session = SQLiteSession("conversation", str(tmp_path / "ref.db"))
        assert await _run(backend, "ref", session) == "done"
        return list(await session.get_items())

    (tmp_path / "ref").mkdir()
    return asyncio.run(go())


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("cut_at", [1, 2, 3])
def test_a_write_cut_off_is_made_exactly_once_on_resume(
    tmp_path: Path, db_url: str, cut_at: int, after: bool
) -> None:
    reference = _reference(tmp_path)
    rid = f"cut-{uuid.uuid4().hex}"  # the PostgreSQL database is the test session's

    async def go() -> None:
        store = LocalEngine(db_url)
        backend = DurableBackend(store)
        path = tmp_path / "session.db"
        with pytest.raises(Cut):
            await _run(backend, rid, CutSession(path, cut_at=cut_at, after=after))
        again = CutSession(path)
        assert await _run(backend, rid, again) == "done"
        assert await again.get_items() == reference
        # Replayed to its end: the cut write's tail was read once, no other write was made twice.
        assert again.adds == (3 - cut_at) + (0 if after else 1)
        await store.dispose()

    asyncio.run(go())


def test_a_finished_runs_replay_never_touches_the_session(tmp_path: Path) -> None:
    async def go() -> None:
        backend = DurableBackend(engine(tmp_path))
        session = CutSession(tmp_path / "session.db")
        assert await _run(backend, "r", session) == "done"
        items = await session.get_items()
        session.adds = session.gets = 0
        assert await _run(backend, "r", session) == "done"
        assert (session.adds, session.gets) == (0, 0)
        assert await session.get_items() == items

    asyncio.run(go())


def test_a_session_changed_outside_the_run_since_its_cut_write_is_a_divergence(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        backend = DurableBackend(engine(tmp_path))
        path = tmp_path / "session.db"
        with pytest.raises(Cut):
            await _run(backend, "r", CutSession(path, cut_at=2))
        meddled = SQLiteSession("conversation", str(path))
        await meddled.add_items([{"role": "user", "content": "someone else"}])
        with pytest.raises(ReplayDivergenceError, match="changed outside the run") as raised:
            await _run(backend, "r", CutSession(path))
        assert (raised.value.kind, raised.value.step) == ("session", 3)

    asyncio.run(go())


def test_a_run_that_reads_its_session_differently_on_resume_diverges(tmp_path: Path) -> None:
    async def go() -> None:
        backend = DurableBackend(engine(tmp_path))
        path = tmp_path / "session.db"
        with pytest.raises(Cut):
            await _run(backend, "r", CutSession(path, cut_at=2))
        limited = RunConfig(session_settings=SessionSettings(limit=1))
        with pytest.raises(ReplayDivergenceError, match="session step #1") as raised:
            await _run(backend, "r", CutSession(path), run_config=limited)
        assert raised.value.kind == "session"
        assert "reads or writes its session differently" in str(raised.value)

    asyncio.run(go())


def test_a_finished_run_replayed_with_a_session_it_never_had_diverges(tmp_path: Path) -> None:
    async def go() -> None:
        backend = DurableBackend(engine(tmp_path))
        with run_id("r"):
            assert (await backend.run(agent(), "hello")).final_output == "done"
        with pytest.raises(ReplayDivergenceError, match="never made this session step"):
            await _run(backend, "r", CutSession(tmp_path / "session.db"))

    asyncio.run(go())


class CutDurableSession(DurableSession):
    """A DurableSession whose first keyed write dies right after the database took it."""

    cut = True

    async def add_items(self, items: list[Any], *, write_key: str | None = None) -> None:
        await super().add_items(items, write_key=write_key)
        if CutDurableSession.cut and write_key is not None:
            CutDurableSession.cut = False
            raise Cut("after the write")


def test_a_durable_sessions_cut_write_is_sent_again_under_its_key(
    tmp_path: Path, db_url: str
) -> None:
    reference = _reference(tmp_path)
    chat = f"chat-{uuid.uuid4().hex}"

    async def go() -> None:
        store = LocalEngine(db_url)
        backend = DurableBackend(store)
        rid = conversation_turn_id(chat, 0)
        CutDurableSession.cut = True
        with pytest.raises(Cut):
            await _run(backend, rid, CutDurableSession(chat, engine=store))
        session = backend.conversation_session(chat)
        assert await _run(backend, rid, session) == "done"
        items = await session.get_items()
        assert [i.get("content") for i in items if i.get("role") == "user"] == ["hello"]
        assert items == reference
        await store.dispose()

    asyncio.run(go())


def test_a_pop_cut_off_is_made_once(tmp_path: Path) -> None:
    """The SDK pops only to rewind a retried turn: the seam itself, under a durable run."""
    intercept.install()
    from agents.run_internal import session_persistence

    async def pop_in(store: LocalEngine, session: Any) -> Any:
        opened = await store.open_run(RunSpec("p", "a", "x", "fp", {}), lease_seconds=30)
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ready.set_result(opened)
        token = ACTIVE.set(ActiveRun(opening=ready, streamed=False))
        try:
            return await session_persistence._session_pop_item(session)
        finally:
            ACTIVE.reset(token)
            await opened.release()

    async def go() -> None:
        store = engine(tmp_path)
        session = SQLiteSession("conversation", str(tmp_path / "session.db"))
        items = [{"role": "user", "content": f"m{i}"} for i in range(4)]
        await session.add_items(items)
        original = session.pop_item

        async def dies() -> Any:
            raise Cut("before the pop")

        session.pop_item = dies  # type: ignore[method-assign]
        with pytest.raises(Cut):
            await pop_in(store, session)
        session.pop_item = original  # type: ignore[method-assign]
        assert await pop_in(store, session) == items[-1]  # resumed: made now
        assert await pop_in(store, session) == items[-1]  # and again: found made, not repeated
        assert [digest(i) for i in await session.get_items()] == [digest(i) for i in items[:3]]
        await store.dispose()

    asyncio.run(go())


def test_a_host_started_again_finds_its_turns_and_resumes_the_cut_one(tmp_path: Path) -> None:
    from runplane_durable.runtime.runner import resume_run

    reference = _reference(tmp_path)

    async def go() -> None:
        store = engine(tmp_path)
        backend = DurableBackend(store)
        assert await backend.conversation_turns("chat") == []
        with backend.conversation_turn("chat", 0) as rid:
            assert rid == conversation_turn_id("chat", 0) == "chat/turn-0"
            await backend.run(agent(), "hello", session=backend.conversation_session("chat"))
        CutDurableSession.cut = True
        with pytest.raises(Cut), backend.conversation_turn("chat", 1):
            await backend.run(agent(), "again", session=CutDurableSession("chat", engine=store))

        # A new host: its conversation's turns say where it stopped; the cut one resumes.
        turns = await backend.conversation_turns("chat")
        assert [(t.id, t.status) for t in turns] == [
            ("chat/turn-0", "completed"),
            ("chat/turn-1", "failed"),
        ]
        session = backend.conversation_session("chat")
        result = await resume_run(backend, turns[-1], agent(), session=session)
        assert result.final_output == "done"
        items = await session.get_items()
        assert len(items) == 2 * len(reference)
        assert [i.get("content") for i in items if i.get("role") == "user"] == ["hello", "again"]
        await store.dispose()

    asyncio.run(go())


def test_turn_ids_fit_any_conversation_id_and_bad_turns_are_refused() -> None:
    long = conversation_turn_id("c" * 200, 12)
    assert len(long) <= 200
    assert long == conversation_turn_id("c" * 200, 12)  # the same in every process
    assert long != conversation_turn_id("c" * 200, 13)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="a turn number is 0, 1, 2"):
            conversation_turn_id("chat", bad)  # type: ignore[arg-type]
    from runplane_durable import UnstorableNameError

    with pytest.raises(UnstorableNameError, match="session id"):
        conversation_turn_id("", 0)
    with pytest.raises(UnstorableNameError, match="session id"):
        DurableSession("bad\x00id")


def test_only_a_conversations_first_turn_is_logged_as_new(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> None:
        store = engine(tmp_path)
        backend = DurableBackend(store)
        for n in range(3):
            with backend.conversation_turn("chat", n):
                await backend.run(agent(), f"q{n}", session=backend.conversation_session("chat"))
        await store.dispose()

    with caplog.at_level("WARNING", logger="runplane_durable"):
        asyncio.run(go())
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == [
        "started new run chat/turn-0"
    ]


def _payer(paid: list[int], *script: Any) -> Agent[Any]:
    @function_tool(needs_approval=True)
    def pay(amount: int) -> str:
        """Pay an amount."""
        paid.append(amount)
        return f"paid {amount}"

    return Agent(name="payer", tools=[pay], model=ScriptedModel(list(script)))


async def _approved_with(runner: Any, session: Any, rid: str | None) -> Any:
    """The SDK's approval pattern with a session: stop, approve on the state, pass it back."""
    paid: list[int] = []
    # The state goes on with the agent it stopped with (and its model): one script for both.
    first = _payer(
        paid,
        [function_call("pay", {"amount": 5}, call_id="p1")],
        [assistant_message("done paying")],
    )
    if rid is None:
        stopped = await runner.run(first, "pay five", session=session)
    else:
        with run_id(rid):
            stopped = await runner.run(first, "pay five", session=session)
    state = stopped.to_state()
    state.approve(stopped.interruptions[0])
    done = await runner.run(first, state, session=session)
    assert (done.final_output, paid) == ("done paying", [5])
    return await session.get_items()


def test_a_run_stopped_for_approval_goes_on_with_its_session_as_the_sdks_does(
    tmp_path: Path,
) -> None:
    from agents import Runner as SDKRunner

    async def go() -> None:
        sdk_items = await _approved_with(
            SDKRunner, SQLiteSession("c", str(tmp_path / "sdk.db")), None
        )
        store = engine(tmp_path)
        backend = DurableBackend(store)
        session = SQLiteSession("c", str(tmp_path / "durable.db"))
        assert await _approved_with(backend, session, "pay-1") == sdk_items
        journal = await store.read_journal("pay-1")
        keys = [e.key for e in journal if e.kind == "session"]
        assert len(keys) == len(set(keys))
        assert any(":" in k for k in keys)  # the stretch after the snapshot keys its own steps
        # The finished run replays from its journal and leaves the session as it is.
        paid: list[int] = []
        with run_id("pay-1"):
            again = await backend.run(
                _payer(paid, [assistant_message("x")]), "pay five", session=session
            )
        assert again.final_output == "done paying"
        assert await session.get_items() == sdk_items
        await store.dispose()

    asyncio.run(go())
