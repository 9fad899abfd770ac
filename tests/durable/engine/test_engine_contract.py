"""The engine contract, run against every engine: SQLite and PostgreSQL now, the remote engine
when it exists (add it to `ENGINES`).

Each test speaks only through the `Engine` and `RunSession` protocols of `engine.py`, so it holds
for any engine; every record the engine hands back, and every durable error it raises, must come
back unchanged from its JSON form, as it will when it crosses a wire.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from runplane_durable import LocalEngine
from runplane_durable.engine import Engine, RunSession, open_engine
from runplane_durable.errors import (
    DatabaseError,
    DurableError,
    RunCancelledError,
    RunInputMismatchError,
    RunLeasedError,
    RunNotFoundError,
    error_from_wire,
)
from runplane_durable.events import PendingCall
from runplane_durable.records import (
    EventRecord,
    JournalEntry,
    JournalRecord,
    NewEvent,
    RunRecord,
    RunSpec,
    UsageDelta,
)
from support.durable import fresh_pg_database, sqlite_url

# A new client of one store per call: two clients are two processes, as far as a run can tell.
Clients = Callable[[], Engine]


@pytest.fixture(scope="module")
def contract_pg_url() -> Iterator[str]:
    yield from fresh_pg_database()


def _local(url: str) -> Engine:
    return LocalEngine(url)


# name -> (how a test gets the store's location, how a client is made on it)
ENGINES: dict[str, tuple[Callable[[pytest.FixtureRequest, Path], str], Callable[[str], Engine]]] = {
    "sqlite": (lambda request, tmp: sqlite_url(tmp), _local),
    "postgresql": (lambda request, tmp: str(request.getfixturevalue("contract_pg_url")), _local),
}


@pytest.fixture(params=sorted(ENGINES))
def clients(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Clients]:
    where, make = ENGINES[request.param]
    location = where(request, tmp_path)
    made: list[Engine] = []

    def client() -> Engine:
        made.append(make(location))
        return made[-1]

    yield client

    async def dispose() -> None:
        for engine in made:
            await engine.dispose()

    asyncio.run(dispose())


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def _rid() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"  # the PostgreSQL database is the module's


def _spec(run_id: str, *, agent: str = "echo", text: str = "go") -> RunSpec:
    return RunSpec(run_id, agent, {"text": text}, f"fp-{agent}-{text}", {"mode": "run"})


def wire(value: Any) -> Any:
    """`value` (a record, or a list of them), after checking it survives its JSON form."""
    for record in value if isinstance(value, list) else [value]:
        back = type(record).from_json(json.loads(json.dumps(record.to_json())))
        assert back == record
        assert type(back) is type(record)
    return value


def wired(error: DurableError) -> DurableError:
    """`error`, after checking a client rebuilds it from its wire form."""
    back = error_from_wire(json.loads(json.dumps(error.to_wire())))
    assert (type(back), str(back), back.fields) == (type(error), str(error), error.fields)
    return error


async def _open(engine: Engine, spec: RunSpec, lease_seconds: float = 30) -> RunSession:
    session = await engine.open_run(spec, lease_seconds=lease_seconds)
    wire(session.record)
    wire(session.journal)
    return session


async def _types(engine: Engine, run_id: str) -> list[str]:
    return [e.type for e in wire(await engine.list_events(run_id))]


def test_a_new_run_opens_leased_with_an_empty_journal(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        before = time.time()
        session = await _open(engine, _spec(rid))
        record = session.record
        assert (record.id, record.agent_name, record.status) == (rid, "echo", "running")
        assert (record.input, record.options) == ({"text": "go"}, {"mode": "run"})
        assert record.input_fingerprint == "fp-echo-go"
        assert record.owner is not None
        assert record.lease_expires_at is not None
        assert record.lease_expires_at >= before + 29
        assert (session.journal, session.read_only) == ([], False)
        stored = wire(await engine.get_run(rid))
        assert (stored.id, stored.status, stored.owner) == (rid, "running", record.owner)
        assert await _types(engine, rid) == ["attempt_started"]
        await session.close()

    run(go)


def test_a_step_commits_its_entry_events_and_usage_together(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        model = JournalEntry("model", "1", "fp-1", {"output": [{"text": "héllo", "p": 0.25}]})
        tool = JournalEntry("tool", "0:call-a", None, {"json": None})
        await session.append(
            journal=model,
            events=[NewEvent("model_call", {"ordinal": 1}), NewEvent("note", {})],
            usage=UsageDelta(model_calls=1, requests=1, input_tokens=7, total_tokens=9),
        )
        # Not waited for: still committed before anything after it, and by close at the latest.
        await session.append(
            journal=tool,
            events=[NewEvent("tool_call", {})],
            usage=UsageDelta(tool_calls=1),
            wait=False,
        )
        await session.append(events=[NewEvent("progress", {"n": [1, 2.5, None]})])
        await session.close()
        journal = wire(await engine.read_journal(rid))
        assert all(type(r) is JournalRecord for r in journal)
        assert [(r.seq, r.entry) for r in journal] == [(1, model), (2, tool)]
        run = wire(await engine.get_run(rid))
        usage = (run.model_calls, run.tool_calls, run.requests, run.input_tokens, run.total_tokens)
        assert usage == (1, 1, 1, 7, 9)
        events = wire(await engine.list_events(rid))
        assert [(e.seq, e.type) for e in events] == [
            (1, "attempt_started"),
            (2, "model_call"),
            (3, "note"),
            (4, "tool_call"),
            (5, "progress"),
            (6, "attempt_ended"),  # closed without an outcome: the lease was given back
        ]
        assert events[4].payload == {"n": [1, 2.5, None]}
        assert all(e.run_id == rid and e.created_at > 0 for e in events)
        assert [e.seq for e in wire(await engine.list_events(rid, after=2, limit=2))] == [3, 4]
        assert wire(await engine.list_events(rid, after=6)) == []
        assert (run.owner, run.status) == (None, "running")  # resumable at once

    run(go)


def test_reopening_a_run_resumes_it_from_its_journal(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        first = await _open(engine, _spec(rid))
        entry = JournalEntry("tool", "0:call-a", None, {"json": "done"})
        await first.append(journal=entry)
        await first.release()
        await first.close()
        second = await _open(clients(), _spec(rid))  # another process
        assert [r.entry for r in second.journal] == [entry]
        assert (second.read_only, second.record.status) == (False, "running")
        assert second.record.owner not in (None, first.record.owner)
        await second.append(journal=JournalEntry("model", "1", "fp", {}))  # seq after the journal
        await second.close()
        assert [r.seq for r in await engine.read_journal(rid)] == [1, 2]
        types = await _types(engine, rid)
        assert types[:3] == ["attempt_started", "attempt_ended", "attempt_started"]

    run(go)


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "awaiting_approval"])
def test_finish_records_each_outcome_and_gives_the_lease_up(clients: Clients, status: Any) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        kwargs: dict[str, Any] = {
            "completed": {"final_output": {"json": "ok"}},
            "failed": {"error": ValueError("the tool broke")},
            "cancelled": {},
            "awaiting_approval": {"calls": [PendingCall("c1", "refund", "1:c1")]},
        }[status]
        await session.finish(status, **kwargs)
        await session.close()
        record = wire(await engine.get_run(rid))
        assert (record.status, record.owner, record.lease_expires_at) == (status, None, None)
        assert record.finished_at is not None
        events = wire(await engine.list_events(rid))
        assert [e.type for e in events][-2:] == ["attempt_ended", f"run_{status}"]
        last = events[-1].payload
        if status == "completed":
            assert record.final_output == {"json": "ok"} == last["final_output"]
        if status == "failed":
            assert (record.error_type, record.error) == ("builtins.ValueError", "the tool broke")
            assert last == {"error_type": "builtins.ValueError", "error": "the tool broke"}
        if status == "awaiting_approval":
            assert last["calls"] == [{"call_id": "c1", "name": "refund", "key": "1:c1"}]

    run(go)


def test_finish_refuses_running_and_writes_nothing(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        with pytest.raises(ValueError, match="not 'running'"):
            await session.finish("running")
        with pytest.raises(ValueError, match="'paused' is not a run status"):
            await session.finish("paused")  # type: ignore[arg-type]
        assert await _types(engine, rid) == ["attempt_started"]
        await session.close()

    run(go)


def test_a_completed_run_opens_read_only_with_its_journal(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await session.append(journal=JournalEntry("model", "1", "fp", {"a": 1}))
        await session.finish("completed", final_output={"json": 1.5})
        await session.close()
        replay = await _open(clients(), _spec(rid))
        assert (replay.read_only, replay.record.status) == (True, "completed")
        assert replay.record.final_output == {"json": 1.5}
        assert [(r.seq, r.payload) for r in replay.journal] == [(1, {"a": 1})]
        await replay.close()
        assert (await engine.get_run(rid)).status == "completed"
        assert (await _types(engine, rid))[-1] == "run_completed"  # replaying wrote nothing

    run(go)


@pytest.mark.parametrize("status", ["failed", "awaiting_approval"])
def test_a_failed_or_waiting_run_is_claimed_again(clients: Clients, status: Any) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await session.finish(status, error=RuntimeError("x") if status == "failed" else None)
        await session.close()
        again = await _open(clients(), _spec(rid))
        assert (again.read_only, again.record.status) == (False, "running")
        await again.close()

    run(go)


def test_a_cancelled_run_cannot_be_opened_again(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await session.finish("cancelled")
        await session.close()
        with pytest.raises(RunCancelledError) as info:
            await clients().open_run(_spec(rid), lease_seconds=30)
        assert wired(info.value).fields == {"run_id": rid}
        assert not isinstance(info.value, RunInputMismatchError)

    run(go)


def test_a_run_id_reused_with_another_agent_or_input_is_refused(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        with pytest.raises(RunInputMismatchError) as agent:
            await engine.open_run(_spec(rid, agent="other"), lease_seconds=30)
        assert wired(agent.value).fields == {
            "run_id": rid,
            "what_changed": "agent",
            "recorded_agent": "echo",
            "agent": "other",
        }
        with pytest.raises(RunInputMismatchError) as given:
            await engine.open_run(_spec(rid, text="other"), lease_seconds=30)
        assert wired(given.value).fields["what_changed"] == "input"
        await session.close()

    run(go)


def test_enqueue_run_makes_a_queued_run_that_open_run_starts_once(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        spec = replace(_spec(rid), agent_ref="app.agents:echo")
        before = time.time()
        queued = wire(await engine.enqueue_run(spec))
        assert (queued.id, queued.status, queued.owner, queued.lease_expires_at) == (
            rid,
            "queued",
            None,
            None,
        )
        assert (queued.queue, queued.agent_ref, queued.agent_name) == (
            "default",
            "app.agents:echo",
            "echo",
        )
        assert queued.created_at >= before
        assert wire(await engine.get_run(rid)) == queued
        assert [(e.type, e.payload) for e in wire(await engine.list_events(rid))] == [
            ("run_queued", {"queue": "default", "agent_ref": "app.agents:echo"})
        ]
        assert wire(await clients().enqueue_run(spec)) == queued  # the same run, once
        with pytest.raises(RunInputMismatchError) as given:
            await engine.enqueue_run(_spec(rid, text="other"))
        assert wired(given.value).fields["what_changed"] == "input"

        session = await _open(clients(), spec)  # a worker starts it
        assert (session.record.status, session.journal, session.read_only) == (
            "running",
            [],
            False,
        )
        with pytest.raises(RunLeasedError):  # a second worker does not
            await clients().open_run(spec, lease_seconds=30)
        events = wire(await engine.list_events(rid))
        assert [e.type for e in events] == ["run_queued", "attempt_started"]
        assert (events[1].payload["attempt"], events[1].payload["resumed"]) == (1, False)
        stored = wire(await engine.get_run(rid))
        assert (stored.status, stored.queue, stored.agent_ref) == (
            "running",
            "default",
            "app.agents:echo",
        )
        await session.close()

    run(go)


def test_open_run_stores_the_agent_ref_and_queue_of_a_new_run(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, replace(_spec(rid), agent_ref="m:a", queue="q"))
        assert (session.record.agent_ref, session.record.queue) == ("m:a", "q")
        await session.release()
        await session.close()
        again = await _open(clients(), replace(_spec(rid), agent_ref="n:b", queue="r"))
        assert (again.record.agent_ref, again.record.queue) == ("m:a", "q")  # kept as created
        await again.close()
        stored = wire(await engine.get_run(rid))
        assert (stored.agent_ref, stored.queue) == ("m:a", "q")

    run(go)


def test_claimable_runs_are_those_a_worker_of_the_queue_knows_and_may_claim(
    clients: Clients,
) -> None:
    async def go() -> None:
        engine = clients()
        tag = uuid.uuid4().hex[:8]  # the PostgreSQL database is shared: agents of this test only
        ref, name, queue = f"app_{tag}:agent", f"agent-{tag}", f"q-{tag}"

        def spec(label: str, **kw: Any) -> RunSpec:
            fields = {"agent_ref": ref, "queue": queue, **kw}
            return replace(_spec(f"{label}-{tag}", agent=fields.pop("agent", name)), **fields)

        async def opened(label: str, lease: float = 30, **kw: Any) -> RunSession:
            return await _open(clients(), spec(label, **kw), lease_seconds=lease)

        await engine.enqueue_run(spec("queued-1"))
        held = await opened("held")  # executing under a live lease: not claimable
        expired = await opened("expired", lease=0.2)  # its holder went silent
        stopped = await opened("stopped")
        await stopped.release()
        await stopped.close()
        done = await opened("done")
        await done.finish("completed", final_output={"json": 1})
        await done.close()
        failed = await opened("failed")
        await failed.finish("failed", error=RuntimeError("no"))
        await failed.close()
        await engine.enqueue_run(spec("by-name", agent_ref=None))  # known by its name alone
        await engine.enqueue_run(spec("queued-2"))
        await engine.enqueue_run(spec("other-queue", queue=f"other-{tag}"))
        await engine.enqueue_run(spec("other-ref", agent_ref=f"app_{tag}:someone_else"))
        await engine.enqueue_run(spec("other-name", agent_ref=None, agent=f"else-{tag}"))
        nested = await opened("nested", lease=0.2, queue=None)  # its parent resumes it
        await asyncio.sleep(0.3)

        found = wire(
            await clients().claimable_runs(
                agent_refs=[ref], agent_names=[name], queue=queue, limit=10
            )
        )
        assert [r.id.removesuffix(f"-{tag}") for r in found] == [
            "expired",  # resumable runs first, oldest first
            "stopped",
            "queued-1",  # then queued ones, oldest first
            "by-name",
            "queued-2",
        ]
        limited = await engine.claimable_runs(
            agent_refs=[ref], agent_names=[name], queue=queue, limit=3
        )
        assert [r.id for r in limited] == [r.id for r in found[:3]]
        none = await engine.claimable_runs(agent_refs=[], agent_names=[], queue=queue, limit=10)
        assert none == []
        by_name = await engine.claimable_runs(
            agent_refs=[], agent_names=[name], queue=queue, limit=10
        )
        assert [r.id for r in by_name] == [f"by-name-{tag}"]
        with pytest.raises(ValueError, match="limit"):
            await engine.claimable_runs(agent_refs=[ref], agent_names=[], queue=queue, limit=0)

        claimed = await _open(clients(), spec("queued-1"))  # claimed: no longer listed
        left = await engine.claimable_runs(
            agent_refs=[ref], agent_names=[name], queue=queue, limit=10
        )
        assert f"queued-1-{tag}" not in [r.id for r in left]
        for session in (held, expired, nested, claimed):
            await session.close()

    run(go)


def test_a_held_lease_refuses_a_second_execution_until_given_up(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        first = await _open(engine, _spec(rid))
        with pytest.raises(RunLeasedError) as info:
            await clients().open_run(_spec(rid), lease_seconds=30)
        fields = wired(info.value).fields
        assert (fields["run_id"], fields["holder"], fields["taken_over"]) == (
            rid,
            first.record.owner,
            False,
        )
        assert 0 < fields["lease_expires_in"] <= 30
        await first.check_lease()  # fresh: still ours
        expires = (await engine.get_run(rid)).lease_expires_at
        await asyncio.sleep(0.01)
        await first.heartbeat()
        renewed = (await engine.get_run(rid)).lease_expires_at
        assert expires is not None
        assert renewed is not None
        assert renewed > expires
        await first.release()
        assert (await engine.get_run(rid)).owner is None
        second = await _open(clients(), _spec(rid))
        await second.close()
        await first.close()

    run(go)


def test_a_session_that_lost_its_lease_writes_nothing_more(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        stale = await _open(engine, _spec(rid), lease_seconds=0.05)
        await stale.append(journal=JournalEntry("tool", "0:call-a", None, {"n": 1}))
        await asyncio.sleep(0.2)  # the lease expires
        taker = await _open(clients(), _spec(rid))
        assert [r.key for r in taker.journal] == ["0:call-a"]
        with pytest.raises(RunLeasedError) as info:
            await stale.check_lease()
        assert wired(info.value).fields["taken_over"] is True
        with pytest.raises(RunLeasedError):
            await stale.append(journal=JournalEntry("tool", "0:late", None, {"n": 2}))
        with pytest.raises(RunLeasedError):
            await stale.heartbeat()
        with pytest.raises(RunLeasedError):
            await stale.finish("completed", final_output={"json": "stale"})
        await stale.close()  # gives nothing back: the lease is the taker's
        await taker.append(journal=JournalEntry("model", "1", "fp", {"n": 3}))
        record = wire(await engine.get_run(rid))
        assert (record.status, record.owner) == ("running", taker.record.owner)
        assert [r.key for r in wire(await engine.read_journal(rid))] == ["0:call-a", "1"]
        await taker.close()

    run(go)


def test_close_gives_an_unsettled_lease_back_and_may_be_repeated(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await session.close()
        await session.close()
        assert (await engine.get_run(rid)).owner is None
        ended = [e for e in await engine.list_events(rid) if e.type == "attempt_ended"]
        assert [e.payload["reason"] for e in ended] == ["interrupted"]

    run(go)


def test_reading_an_unknown_run(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        with pytest.raises(RunNotFoundError) as info:
            await engine.get_run(rid)
        assert wired(info.value).fields["run_id"] == rid
        assert await engine.read_journal(rid) == []
        assert await engine.list_events(rid) == []

    run(go)


def test_list_runs_newest_first_by_status_and_limit(clients: Clients) -> None:
    async def go() -> None:
        engine = clients()
        prefix = _rid()
        outcomes: list[Any] = ["completed", "failed", None, "completed"]
        for i, outcome in enumerate(outcomes):
            session = await _open(engine, _spec(f"{prefix}-{i}"))
            if outcome is not None:
                await session.finish(outcome)
            await session.close()
            await asyncio.sleep(0.002)  # distinct creation times

        def ours(found: list[RunRecord]) -> list[str]:
            return [r.id.rsplit("-", 1)[1] for r in wire(found) if r.id.startswith(prefix)]

        assert ours(await engine.list_runs(limit=None)) == ["3", "2", "1", "0"]
        assert ours(await engine.list_runs(limit=2)) == ["3", "2"]  # this test's are the newest
        assert ours(await engine.list_runs(status="completed", limit=None)) == ["3", "0"]
        assert ours(await engine.list_runs(status="running", limit=None)) == ["2"]
        assert all(r.status == "failed" for r in await engine.list_runs(status="failed"))
        with pytest.raises(ValueError, match="'paused' is not a run status"):
            await engine.list_runs(status="paused")  # type: ignore[arg-type]

    run(go)


def test_every_record_type_crosses_the_wire(clients: Clients) -> None:
    """The records this module got back, by type: each was checked by `wire`."""
    seen = {RunRecord, JournalRecord, EventRecord}

    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await session.append(journal=JournalEntry("model", "1", "fp", {"x": "✓"}))
        await session.close()
        got = [await engine.get_run(rid), *await engine.read_journal(rid)]
        got += await engine.list_events(rid)
        assert {type(r) for r in wire(got)} == seen

    run(go)


def test_an_engine_says_where_its_runs_are_without_a_password(clients: Clients) -> None:
    where = clients().describe()
    assert isinstance(where, str)
    assert "database" in where or "server" in where


def test_open_engine_is_the_one_factory_and_read_only_engines_write_nothing(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path)
    reader = open_engine(url, read_only=True)

    async def go() -> None:
        with pytest.raises(DatabaseError, match="nothing was created"):
            await reader.list_runs()
        writer = open_engine(url)
        session = await writer.open_run(_spec(_rid()), lease_seconds=30)
        await session.finish("completed", final_output={"json": "ok"})
        await session.close()
        await writer.dispose()
        assert [r.status for r in await reader.list_runs()] == ["completed"]
        await reader.dispose()

    before = sorted(p.name for p in tmp_path.iterdir())
    run(go)
    assert before == []  # the reader created nothing before the writer did
    assert open_engine(url).describe() == f"SQLite database {tmp_path / 'runs.db'}"
