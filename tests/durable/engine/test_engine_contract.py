"""The engine contract, run against every engine: SQLite and PostgreSQL, and the remote engine
against a real `runplane server` subprocess on each of them (add a new one to `ENGINES`).

Each test speaks only through the `Engine` and `RunSession` protocols of `engine.py`, so it holds
for any engine; every record the engine hands back, and every durable error it raises, must come
back unchanged from its JSON form, as it will when it crosses a wire.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from runplane_durable import LocalEngine, RemoteEngine
from runplane_durable.engine import Engine, RunSession, open_engine
from runplane_durable.errors import (
    ApprovalConflictError,
    ApprovalNotFoundError,
    DatabaseError,
    DurableError,
    RunCancelledError,
    RunFinishedError,
    RunInputMismatchError,
    RunLeasedError,
    RunNotFoundError,
    TaskLeaseLostError,
    TaskNotFoundError,
    error_from_wire,
)
from runplane_durable.events import PendingCall
from runplane_durable.records import (
    Approval,
    EventRecord,
    JournalEntry,
    JournalRecord,
    NewEvent,
    RunRecord,
    RunSpec,
    Snapshot,
    TaskResult,
    TaskSpec,
    UsageDelta,
    run_cursor,
)
from support.durable import fresh_pg_database, sqlite_url
from support.durable_server import running_server

# A new client of one store per call: two clients are two processes, as far as a run can tell.
Clients = Callable[[], Engine]


@pytest.fixture(scope="module")
def contract_pg_url() -> Iterator[str]:
    yield from fresh_pg_database()


@pytest.fixture(scope="module")
def server_on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `runplane server` for the module, on its own SQLite file; its URL."""
    where = tmp_path_factory.mktemp("server-sqlite")
    with running_server(sqlite_url(where), where / "server.log") as server:
        yield server.url


@pytest.fixture(scope="module")
def server_on_postgresql(
    contract_pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    where = tmp_path_factory.mktemp("server-pg")
    with running_server(contract_pg_url, where / "server.log") as server:
        yield server.url


def _local(url: str) -> Engine:
    return LocalEngine(url)


def _remote(url: str) -> Engine:
    return RemoteEngine(url)


# name -> (how a test gets the store's location, how a client is made on it)
ENGINES: dict[str, tuple[Callable[[pytest.FixtureRequest, Path], str], Callable[[str], Engine]]] = {
    "sqlite": (lambda request, tmp: sqlite_url(tmp), _local),
    "postgresql": (lambda request, tmp: str(request.getfixturevalue("contract_pg_url")), _local),
    "remote-sqlite": (
        lambda request, tmp: str(request.getfixturevalue("server_on_sqlite")),
        _remote,
    ),
    "remote-postgresql": (
        lambda request, tmp: str(request.getfixturevalue("server_on_postgresql")),
        _remote,
    ),
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


def test_a_claim_opens_a_run_only_in_the_status_it_was_listed_in(clients: Clients) -> None:
    """A worker claims what `claimable_runs` listed; by the time it opens the run, another
    process may have finished it. `RunSpec.claim_status` makes the opening a claim of the run in
    that status only: a run failed or completed since is refused (RunLeasedError: another
    process got there first), never taken up again or replayed; a plain opening still retries a
    failed run and replays a completed one."""

    async def go() -> None:
        engine, failed_id, done_id, queued_id = clients(), _rid(), _rid(), _rid()
        failed = await _open(engine, _spec(failed_id))
        await failed.finish("failed", error=RuntimeError("no"))
        await failed.close()
        done = await _open(engine, _spec(done_id))
        await done.finish("completed", final_output={"json": 1})
        await done.close()
        failed_events = await _types(engine, failed_id)
        for rid in (failed_id, done_id):
            with pytest.raises(RunLeasedError) as refused:
                await clients().open_run(
                    replace(_spec(rid), claim_status="running"), lease_seconds=30
                )
            wired(refused.value)
            assert refused.value.taken_over is False
            assert (await engine.get_run(rid)).status in ("failed", "completed")
        assert await _types(engine, failed_id) == failed_events  # no attempt was started
        await engine.enqueue_run(_spec(queued_id))
        claimed = await _open(clients(), replace(_spec(queued_id), claim_status="queued"))
        assert claimed.record.status == "running"
        await claimed.close()
        retried = await _open(clients(), _spec(failed_id))  # a plain opening: a retry
        assert (retried.record.status, retried.read_only) == ("running", False)
        await retried.close()
        replayed = await _open(clients(), _spec(done_id))
        assert replayed.read_only
        await replayed.close()

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


async def _made(engine: Engine, specs: list[RunSpec]) -> list[RunRecord]:
    """The runs of `specs`, created in order, each at a later time than the one before."""
    made = []
    for spec in specs:
        session = await _open(engine, spec)
        await session.close()
        made.append(await engine.get_run(spec.run_id))
        # The next run's created_at is later than this one's.
        await asyncio.sleep(max(0.0, made[-1].created_at - time.time()) + 0.002)
    return made


def test_list_runs_filters_by_agent_and_creation_time(clients: Clients) -> None:
    async def go() -> None:
        engine, prefix = clients(), _rid()
        alpha, beta = f"{prefix}-alpha", f"{prefix}-beta"
        made = await _made(
            engine, [_spec(f"{prefix}-{i}", agent=(alpha, beta)[i % 2]) for i in range(5)]
        )
        session = await _open(clients(), _spec(made[2].id, agent=alpha))
        await session.finish("failed", error=RuntimeError("no"))
        await session.close()

        def ids(found: list[RunRecord]) -> list[str]:
            return [r.id.rsplit("-", 1)[1] for r in wire(found)]

        assert ids(await engine.list_runs(agent=alpha, limit=None)) == ["4", "2", "0"]
        assert ids(await engine.list_runs(agent=beta, limit=None)) == ["3", "1"]
        assert ids(await engine.list_runs(agent=alpha, status="failed")) == ["2"]
        assert await engine.list_runs(agent=f"{prefix}-nobody") == []
        at = made[2].created_at  # after: at or after it; before: strictly before it
        assert ids(await engine.list_runs(agent=alpha, created_after=at)) == ["4", "2"]
        assert ids(await engine.list_runs(agent=alpha, created_before=at)) == ["0"]
        window = await engine.list_runs(
            created_after=made[1].created_at, created_before=made[4].created_at, limit=None
        )
        assert ids(window) == ["3", "2", "1"]
        assert await engine.list_runs(agent=alpha, limit=0) == []

    run(go)


def test_list_runs_pages_with_cursors_newest_first_each_run_once(clients: Clients) -> None:
    async def go() -> None:
        engine, prefix = clients(), _rid()
        agent = f"{prefix}-pages"
        made = await _made(engine, [_spec(f"{prefix}-{i}", agent=agent) for i in range(5)])
        newest_first = [r.id for r in reversed(made)]
        pages: list[list[str]] = []
        cursor = None
        while True:
            page = wire(await engine.list_runs(agent=agent, limit=2, cursor=cursor))
            if not page:
                break
            pages.append([r.id for r in page])
            cursor = run_cursor(page[-1])
            if len(pages) == 1:  # a run made meanwhile is newer than every cursor: never listed
                await _made(engine, [_spec(f"{prefix}-late", agent=agent)])
        assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
        # A cursor is plain text: another client (another process) continues the listing.
        later = await clients().list_runs(agent=agent, cursor=run_cursor(made[3]), limit=None)
        assert [r.id for r in later] == newest_first[2:]
        older = await engine.list_runs(agent=agent, status="running", cursor=run_cursor(made[1]))
        assert [r.id for r in older] == [made[0].id]

    run(go)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"cursor": "not-a-cursor"}, "is not a run listing's cursor"),
        ({"cursor": ""}, "is not a run listing's cursor"),
        ({"cursor": "WzIsIDEuMCwgIngiXQ"}, "is not a run listing's cursor"),  # [2, 1.0, "x"]
        ({"limit": -1}, "limit must be a count of runs"),
        ({"created_after": float("nan")}, "created_after must be a finite time"),
        ({"created_before": float("inf")}, "created_before must be a finite time"),
        ({"status": "paused"}, "'paused' is not a run status"),
    ],
)
def test_list_runs_refuses_what_it_cannot_mean(
    clients: Clients, arguments: dict[str, Any], message: str
) -> None:
    async def go() -> None:
        with pytest.raises(ValueError, match=message):
            await clients().list_runs(**arguments)

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


# -- remote tool tasks ----------------------------------------------------------------------------


def _task(rid: str, key: str = "0:call-a", **kwargs: Any) -> TaskSpec:
    fields: dict[str, Any] = {
        "queue": kwargs.pop("queue", f"q-{uuid.uuid4().hex[:8]}"),
        "tool_name": "lookup",
        "call_id": key.split(":", 1)[1],
        "arguments": '{"city": "Zürich"}',
        "context": {"type": "app:Deps", "data": {"user": 7}},
        **kwargs,
    }
    return TaskSpec(run_id=rid, call_key=key, **fields)


def wired_task(value: Any) -> Any:
    for record in value if isinstance(value, list) else [value]:
        if record is not None:
            wire(record)
            if record.result is not None:
                wire(record.result)
    return value


def test_enqueueing_a_call_twice_gives_one_task(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        spec = _task(rid, max_attempts=2, timeout=5.0, retry_delay=0.5)
        wire(spec)
        first = wired_task(await engine.enqueue_task(spec))
        assert (first.run_id, first.call_key, first.queue, first.status) == (
            rid,
            "0:call-a",
            spec.queue,
            "pending",
        )
        assert (first.arguments, first.context) == (spec.arguments, spec.context)
        assert (first.attempts, first.max_attempts, first.timeout, first.retry_delay) == (
            0,
            2,
            5.0,
            0.5,
        )
        assert first.owner is None
        assert first.result is None
        again = await clients().enqueue_task(spec)  # a resumed run, in another process
        assert again == first
        other = await engine.enqueue_task(_task(rid, "0:call-b", queue=spec.queue))
        assert other.id != first.id
        assert [t.id for t in wired_task(await engine.list_tasks(rid))] == [first.id, other.id]
        assert wired_task(await engine.get_task(first.id)) == first
        assert await engine.list_tasks(_rid()) == []
        with pytest.raises(TaskNotFoundError) as info:
            await engine.get_task("no-such-task")
        assert wired(info.value).fields == {"task_id": "no-such-task"}

    run(go)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"retry_delay": -1.0}, "retry_delay must be 0 or more"),
        ({"timeout": 0.0}, "timeout must be positive"),
        ({"queue": ""}, "non-empty"),
    ],
)
def test_a_task_that_cannot_be_retried_as_asked_is_refused(
    clients: Clients, change: dict[str, Any], message: str
) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        with pytest.raises(ValueError, match=message):
            await engine.enqueue_task(_task(rid, **change))
        assert await engine.list_tasks(rid) == []

    run(go)


def test_a_claim_takes_a_task_once_for_its_queue_and_tools(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        spec = _task(rid)
        task = await engine.enqueue_task(spec)
        worker = clients()
        assert (
            await worker.claim_task(
                queue=spec.queue, tools=["other"], owner="w:1", lease_seconds=30
            )
            is None
        )
        assert (
            await worker.claim_task(
                queue=f"{spec.queue}-x", tools=["lookup"], owner="w:1", lease_seconds=30
            )
            is None
        )
        before = time.time()
        claimed = wired_task(
            await worker.claim_task(
                queue=spec.queue, tools=["lookup"], owner="w:1", lease_seconds=30
            )
        )
        assert claimed is not None
        assert (claimed.id, claimed.status, claimed.attempts, claimed.owner) == (
            task.id,
            "running",
            1,
            "w:1",
        )
        assert claimed.lease_expires_at is not None
        assert claimed.lease_expires_at >= before + 29
        assert (
            await clients().claim_task(
                queue=spec.queue, tools=["lookup"], owner="w:2", lease_seconds=30
            )
            is None
        )
        lease = wire(claimed.held(30))
        await worker.heartbeat_task(lease)
        renewed = await engine.get_task(task.id)
        assert renewed.lease_expires_at is not None
        assert renewed.lease_expires_at >= claimed.lease_expires_at
        result = TaskResult("ok", output={"json": {"temp": 21.5}})
        done = wired_task(await worker.complete_task(lease, result))
        assert (done.status, done.result, done.owner, done.lease_expires_at) == (
            "completed",
            result,
            None,
            None,
        )
        # Recorded once: the same attempt's result again is refused, and changes nothing.
        with pytest.raises(TaskLeaseLostError) as info:
            await worker.complete_task(lease, TaskResult("ok", output={"json": "again"}))
        assert wired(info.value).fields == {
            "task_id": task.id,
            "attempt": 1,
            "status": "completed",
            "attempts": 1,
        }
        assert (await engine.get_task(task.id)).result == result
        assert (
            await worker.claim_task(
                queue=spec.queue, tools=["lookup"], owner="w:3", lease_seconds=30
            )
            is None
        )

    run(go)


def test_a_raising_tool_is_a_result_not_a_retry(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        spec = _task(rid)
        await engine.enqueue_task(spec)
        claimed = await engine.claim_task(
            queue=spec.queue, tools=["lookup"], owner="w:1", lease_seconds=30
        )
        assert claimed is not None
        raised = TaskResult("error", error_type="builtins.KeyError", error="'Zürich'")
        done = wired_task(await engine.complete_task(claimed.held(30), raised))
        assert (done.status, done.result, done.attempts) == ("completed", raised, 1)

    run(go)


def test_a_failed_attempt_is_retried_after_its_backoff_then_the_task_fails(
    clients: Clients,
) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        spec = _task(rid, max_attempts=2, retry_delay=0.3)
        task = await engine.enqueue_task(spec)
        first = await engine.claim_task(
            queue=spec.queue, tools=["lookup"], owner="w:1", lease_seconds=30
        )
        assert first is not None
        ended = time.time()
        retried = wired_task(await engine.fail_task(first.held(30), "it timed out"))
        assert (retried.status, retried.owner, retried.error) == (
            "pending",
            None,
            "attempt 1: it timed out",
        )
        assert ended + 0.3 <= retried.available_at <= time.time() + 0.3
        # Not before its delay; then once more, as attempt 2.
        assert (
            await engine.claim_task(
                queue=spec.queue, tools=["lookup"], owner="w:2", lease_seconds=30
            )
            is None
        )
        await asyncio.sleep(0.35)
        second = await engine.claim_task(
            queue=spec.queue, tools=["lookup"], owner="w:2", lease_seconds=30
        )
        assert second is not None
        assert (second.id, second.attempts, second.owner) == (task.id, 2, "w:2")
        with pytest.raises(TaskLeaseLostError):  # attempt 1 is over: fenced out
            await engine.fail_task(first.held(30), "late")
        failed = wired_task(await engine.fail_task(second.held(30), "it timed out again"))
        assert (failed.status, failed.attempts, failed.error) == (
            "failed",
            2,
            "attempt 2: it timed out again",
        )
        assert (
            await engine.claim_task(
                queue=spec.queue, tools=["lookup"], owner="w:3", lease_seconds=30
            )
            is None
        )

    run(go)


def test_an_abandoned_attempt_is_taken_over_and_its_late_writes_refused(
    clients: Clients,
) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        spec = _task(rid, retry_delay=0.0)
        task = await engine.enqueue_task(spec)
        stalled = clients()
        first = await stalled.claim_task(
            queue=spec.queue, tools=["lookup"], owner="w:stalled", lease_seconds=0.1
        )
        assert first is not None
        await asyncio.sleep(0.25)  # its lease expires
        taker = clients()
        second = await taker.claim_task(
            queue=spec.queue, tools=["lookup"], owner="w:taker", lease_seconds=30
        )
        assert second is not None
        assert (second.id, second.attempts) == (task.id, 2)
        assert second.error is not None
        assert "expired" in second.error
        for write in (
            stalled.heartbeat_task(first.held(0.1)),
            stalled.complete_task(first.held(0.1), TaskResult("ok", output={"json": "late"})),
            stalled.fail_task(first.held(0.1), "late"),
        ):
            with pytest.raises(TaskLeaseLostError) as info:
                await write
            fields = wired(info.value).fields
            assert (fields["attempt"], fields["status"], fields["attempts"]) == (1, "running", 2)
        result = TaskResult("ok", output={"json": "on time"})
        await taker.complete_task(second.held(30), result)
        assert (await engine.get_task(task.id)).result == result

    run(go)


def test_an_attempt_whose_holder_died_is_taken_over_at_once(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        spec = _task(rid, retry_delay=0.0)
        await engine.enqueue_task(spec)
        proc = await asyncio.create_subprocess_exec("true")  # its pid is gone once waited for
        await proc.wait()
        holder = f"{socket.gethostname()}:{proc.pid}:deadbeef0000:1"
        first = await engine.claim_task(
            queue=spec.queue, tools=["lookup"], owner=holder, lease_seconds=30
        )
        assert first is not None
        second = await clients().claim_task(
            queue=spec.queue, tools=["lookup"], owner="w:live", lease_seconds=30
        )
        assert second is not None
        assert second.attempts == 2
        assert second.error == f"attempt 1: its worker ({holder}) died"

    run(go)


def test_concurrent_claims_never_share_a_task(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        queue = f"q-{uuid.uuid4().hex[:8]}"
        made = [await engine.enqueue_task(_task(rid, f"0:c{i}", queue=queue)) for i in range(12)]
        workers = [clients() for _ in range(4)]

        async def drain(worker: Engine, n: int) -> list[str]:
            got = []
            while True:
                task = await worker.claim_task(
                    queue=queue, tools=["lookup"], owner=f"w:{n}", lease_seconds=30
                )
                if task is None:
                    return got
                got.append(task.id)

        claimed = await asyncio.gather(*(drain(w, n) for n, w in enumerate(workers)))
        flat = [t for ids in claimed for t in ids]
        assert sorted(flat) == sorted(t.id for t in made)  # each once, none lost

    run(go)


# -- cancel from any process, and retention ------------------------------------------------------


async def _events(engine: Engine, run_id: str) -> list[EventRecord]:
    found = wire(await engine.list_events(run_id))
    assert [e.seq for e in found] == list(range(1, len(found) + 1))  # no gap, no duplicate
    return found


def _asked(event: EventRecord, mode: str, holder: str | None) -> None:
    assert event.type == "cancel_requested"
    payload = event.payload
    assert (payload["mode"], payload["holder"]) == (mode, holder)
    assert payload["host"]
    assert isinstance(payload["pid"], int)
    assert "user" in payload
    assert payload["requested_at"] > 0


def test_cancelling_a_stopped_run_records_it_cancelled_at_once(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await session.append(journal=JournalEntry("model", "1", "fp", {}))
        await session.release()
        await session.close()
        asker = clients()  # another process
        cancelled = wire(await asker.cancel_run(rid, mode="after_turn"))
        assert (cancelled.status, cancelled.owner, cancelled.cancel_requested) == (
            "cancelled",
            None,
            None,
        )
        assert cancelled.finished_at is not None
        events = await _events(engine, rid)
        assert [e.type for e in events][-2:] == ["cancel_requested", "run_cancelled"]
        _asked(events[-2], "after_turn", None)
        assert wire(await asker.cancel_run(rid)) == cancelled  # again: idempotent, unchanged
        assert len(await _events(engine, rid)) == len(events)
        with pytest.raises(RunCancelledError):
            await clients().open_run(_spec(rid), lease_seconds=30)

    run(go)


def test_cancelling_a_run_awaiting_approval_or_orphaned_records_it_at_once(
    clients: Clients,
) -> None:
    async def go() -> None:
        engine = clients()
        waiting, orphan = _rid(), _rid()
        session = await _open(engine, _spec(waiting))
        await session.finish("awaiting_approval", calls=[PendingCall("c1", "refund", "1:c1")])
        await session.close()
        assert wire(await clients().cancel_run(waiting)).status == "cancelled"
        assert [e.type for e in await _events(engine, waiting)][-2:] == [
            "cancel_requested",
            "run_cancelled",
        ]
        stale = await _open(engine, _spec(orphan), lease_seconds=0.05)
        await asyncio.sleep(0.2)  # its lease expired: no process executes it
        record = wire(await clients().cancel_run(orphan))
        assert (record.status, record.owner) == ("cancelled", None)
        types = [e.type for e in await _events(engine, orphan)]
        assert types == ["attempt_started", "cancel_requested", "attempt_ended", "run_cancelled"]
        ended = (await engine.list_events(orphan))[2].payload
        assert ended["reason"] in ("lease_lost", "killed")  # its attempt's end, written for it
        with pytest.raises(RunLeasedError):  # the stale holder writes nothing more
            await stale.append(journal=JournalEntry("model", "1", "fp", {}))
        await stale.close()
        assert (await engine.get_run(orphan)).status == "cancelled"

    run(go)


def test_a_poll_right_after_an_answered_write_reads_nothing_more(clients: Clients) -> None:
    """`poll_cancel(fresh_within=s)` trusts what a write answered within `s` seconds (each
    fenced write reads the request): a run stepping faster than the watcher's tick makes no
    extra reads; past `s`, or with none given, it reads."""

    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await session.append(events=[NewEvent("a")])
        await clients().cancel_run(rid, mode="after_turn")  # after the write's answer
        assert await session.poll_cancel(fresh_within=3600) is None  # not read again
        assert await session.poll_cancel() == "after_turn"  # read
        await clients().cancel_run(rid)
        await asyncio.sleep(0.05)
        assert await session.poll_cancel(fresh_within=0.01) == "immediate"  # stale: read
        await session.finish("cancelled")
        await session.close()

    run(go)


def test_an_executing_run_is_asked_and_learns_it_from_its_writes(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        assert session.cancel_requested is None
        assert await session.poll_cancel() is None
        asker = clients()
        asked = wire(await asker.cancel_run(rid, mode="after_turn"))
        assert (asked.status, asked.cancel_requested) == ("running", "after_turn")
        assert asked.owner == session.record.owner  # the holder keeps it until it stops it
        # Its next step learns of it at no extra cost, and its events follow the request's.
        await session.append(journal=JournalEntry("model", "1", "fp", {}), events=[NewEvent("a")])
        assert session.cancel_requested == "after_turn"
        stronger = wire(await asker.cancel_run(rid))  # immediate wins over after_turn ...
        assert stronger.cancel_requested == "immediate"
        weaker = wire(await asker.cancel_run(rid, mode="after_turn"))  # ... and stays
        assert weaker.cancel_requested == "immediate"
        await session.heartbeat()
        assert session.cancel_requested == "immediate"
        assert await session.poll_cancel() == "immediate"
        await session.append(events=[NewEvent("b")], wait=False)
        await session.finish("cancelled")
        await session.close()
        record = wire(await engine.get_run(rid))
        assert (record.status, record.cancel_requested) == ("cancelled", None)
        events = await _events(engine, rid)
        assert [e.type for e in events] == [
            "attempt_started",
            "cancel_requested",
            "a",
            "cancel_requested",
            "cancel_requested",
            "b",
            "attempt_ended",
            "run_cancelled",
        ]
        _asked(events[1], "after_turn", session.record.owner)
        _asked(events[3], "immediate", session.record.owner)

    run(go)


def test_steps_racing_a_cancel_keep_one_gapless_event_log(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        asker = clients()

        async def steps() -> None:
            for i in range(60):
                await session.append(events=[NewEvent("step", {"i": i})], wait=i % 2 == 0)

        async def asks() -> None:
            for mode in ["after_turn", "immediate", "after_turn"]:
                await asyncio.sleep(0.005)
                await asker.cancel_run(rid, mode=mode)  # type: ignore[arg-type]

        await asyncio.gather(steps(), asks())
        await session.finish("cancelled")
        await session.close()
        events = await _events(engine, rid)
        assert [e.payload["i"] for e in events if e.type == "step"] == list(range(60))
        assert sum(e.type == "cancel_requested" for e in events) == 3

    run(go)


def test_a_request_its_holder_never_carried_out_is_carried_out_by_the_next_opening(
    clients: Clients,
) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await clients().cancel_run(rid, mode="after_turn")
        await session.release()  # stopped (Ctrl-C, say) before carrying it out
        await session.close()
        assert (await engine.get_run(rid)).cancel_requested == "after_turn"
        with pytest.raises(RunCancelledError):
            await clients().open_run(_spec(rid), lease_seconds=30)
        record = wire(await engine.get_run(rid))
        assert (record.status, record.cancel_requested) == ("cancelled", None)
        assert [e.type for e in await _events(engine, rid)][-1] == "run_cancelled"

    run(go)


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_cancelling_a_finished_run_is_refused(clients: Clients, status: Any) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        session = await _open(engine, _spec(rid))
        await session.finish(status, error=ValueError("x") if status == "failed" else None)
        await session.close()
        before = await _events(engine, rid)
        with pytest.raises(RunFinishedError) as info:
            await clients().cancel_run(rid)
        assert wired(info.value).fields == {"run_id": rid, "status": status}
        assert info.value.code == "run_finished"
        assert await _events(engine, rid) == before
        assert (await engine.get_run(rid)).status == status

    run(go)


def test_cancelling_an_unknown_run_or_with_an_unknown_mode(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        with pytest.raises(RunNotFoundError) as info:
            await engine.cancel_run(rid)
        assert wired(info.value).fields["run_id"] == rid
        session = await _open(engine, _spec(rid))
        with pytest.raises(ValueError, match="'later' is not a cancel mode"):
            await engine.cancel_run(rid, mode="later")  # type: ignore[arg-type]
        assert (await engine.get_run(rid)).cancel_requested is None
        await session.close()

    run(go)


def test_prune_deletes_runs_finished_before_the_time_with_their_rows(clients: Clients) -> None:
    async def go() -> None:
        engine, prefix = clients(), _rid()
        outcomes: list[Any] = ["completed", "failed", "cancelled", None, "awaiting_approval"]
        for i, outcome in enumerate(outcomes):
            session = await _open(engine, _spec(f"{prefix}-{i}"))
            await session.append(
                journal=JournalEntry("model", "1", "fp", {}), events=[NewEvent("x")]
            )
            if outcome is not None:
                await session.finish(outcome)
            await session.close()
        cut = time.time() + 0.001
        await asyncio.sleep(0.01)
        late = f"{prefix}-late"
        session = await _open(engine, _spec(late))
        await session.finish("completed")
        await session.close()
        assert await engine.prune(finished_before=cut - 3600) == 0  # none finished that early
        deleted = await engine.prune(finished_before=cut)
        kept = {r.id for r in await engine.list_runs(limit=None) if r.id.startswith(prefix)}
        assert kept == {f"{prefix}-3", f"{prefix}-4", late}
        assert deleted >= 3  # the other tests' finished runs in this store went too
        for i in range(3):
            with pytest.raises(RunNotFoundError):
                await engine.get_run(f"{prefix}-{i}")
            assert await engine.read_journal(f"{prefix}-{i}") == []
            assert await engine.list_events(f"{prefix}-{i}") == []
        assert len(await engine.read_journal(f"{prefix}-3")) == 1
        assert await engine.prune(finished_before=cut) == 0
        reopened = await _open(clients(), _spec(f"{prefix}-0"))  # a pruned id is new again
        assert reopened.journal == []
        await reopened.close()

    run(go)


def test_prune_goes_past_one_batch(clients: Clients) -> None:
    async def go() -> None:
        engine, prefix = clients(), _rid()
        await engine.prune(finished_before=time.time())  # this store's earlier runs
        for i in range(130):
            session = await _open(engine, _spec(f"{prefix}-{i}"))
            await session.finish("completed")
            await session.close()
        assert await engine.prune(finished_before=time.time() + 1) == 130
        assert not [r for r in await engine.list_runs(limit=None) if r.id.startswith(prefix)]

    run(go)


# -- approvals: a run stopped for approval, its sealed snapshot, decisions from any process ------


def _snapshot(*calls: str, model_calls: int = 1) -> Snapshot:
    return Snapshot(
        state={"any": "state", "calls": list(calls)},
        model_calls=model_calls,
        approvals=[
            Approval(c, "pay", '{"amount":5}', "payer", f"{model_calls}:{c}") for c in calls
        ],
    )


async def _stopped(engine: Engine, rid: str, *calls: str) -> None:
    session = await _open(engine, _spec(rid))
    pending = [PendingCall(c, "pay", f"1:{c}") for c in calls]
    await session.finish("awaiting_approval", calls=pending, snapshot=_snapshot(*calls))
    await session.close()


def test_a_run_stopped_with_a_snapshot_waits_unfinished_with_its_calls(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        await _stopped(engine, rid, "p1", "p2")
        record = wire(await clients().get_run(rid))
        assert (record.status, record.finished_at, record.owner) == (
            "awaiting_approval",
            None,
            None,
        )
        approvals = wire(await clients().list_approvals(rid))
        assert [(a.call_id, a.status, a.decided_by) for a in approvals] == [
            ("p1", "pending", None),
            ("p2", "pending", None),
        ]
        types = await _types(engine, rid)
        assert types[-4:] == [
            "attempt_ended",
            "approval_requested",
            "approval_requested",
            "run_awaiting_approval",
        ]
        snapshot = wire(await clients().load_snapshot(rid))
        expected = _snapshot("p1", "p2")
        assert (snapshot.state, snapshot.model_calls) == (expected.state, expected.model_calls)
        assert [replace(a, requested_at=0.0) for a in snapshot.approvals] == expected.approvals
        assert all(a.requested_at > 0 for a in snapshot.approvals)
        with pytest.raises(RunNotFoundError):
            await engine.list_approvals(_rid())
        assert await engine.load_snapshot(_rid()) is None

    run(go)


def test_decisions_are_recorded_once_with_who_decided(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        await _stopped(engine, rid, "p1", "p2")
        record, approvals = await clients().decide(rid, "p1", approve=True, by="alice")
        wire(record)
        wire(approvals)
        assert [a.status for a in approvals] == ["approved", "pending"]
        # who decided; a server adds the client the decision came from ("alice via 127.0.0.1")
        assert approvals[0].decided_by is not None
        assert approvals[0].decided_by.split(" via ")[0] == "alice"
        assert approvals[1].decided_by is None
        before = await _types(engine, rid)
        _, again = await clients().decide(rid, "p1", approve=True, by="bob")
        assert again == approvals  # idempotent: nothing new written
        assert await _types(engine, rid) == before
        _, both = await clients().decide(rid, None, approve=False, message="no", by="carol")
        assert [(a.status, a.message) for a in both] == [("approved", None), ("rejected", "no")]
        decided = [e for e in wire(await engine.list_events(rid)) if e.type == "approval_decided"]
        assert [(e.payload["call_id"], e.payload["approved"]) for e in decided] == [
            ("p1", True),
            ("p2", False),
        ]
        snapshot = wire(await clients().load_snapshot(rid))
        assert snapshot is not None
        assert [a.status for a in snapshot.approvals] == ["approved", "rejected"]

    run(go)


def test_decisions_that_cannot_be_made_are_refused_with_their_reason(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        await _stopped(engine, rid, "p1")
        with pytest.raises(ApprovalNotFoundError) as unknown:
            await clients().decide(rid, "nope", approve=True)
        assert wired(unknown.value).fields == {"run_id": rid, "call_id": "nope", "pending": ["p1"]}
        await clients().decide(rid, "p1", approve=False)
        with pytest.raises(ApprovalConflictError) as other_way:
            await clients().decide(rid, "p1", approve=True)
        assert wired(other_way.value).fields["status"] == "rejected"
        with pytest.raises(ApprovalNotFoundError):
            await clients().decide(rid, None, approve=True)  # none pending
        with pytest.raises(RunNotFoundError):
            await clients().decide(_rid(), None, approve=True)
        never = _rid()
        session = await _open(engine, _spec(never))
        await session.finish("completed", final_output={"json": "done"})
        await session.close()
        with pytest.raises(ApprovalConflictError) as finished:
            await clients().decide(never, None, approve=True)
        assert wired(finished.value).fields["status"] == "completed"

    run(go)


def test_a_decided_run_is_claimable_and_an_undecided_one_is_not(clients: Clients) -> None:
    async def go() -> None:
        engine = clients()
        rid = _rid()
        spec = replace(_spec(rid, agent="approver"), agent_ref=f"mod:{rid}", queue="default")
        session = await _open(engine, spec)
        calls = [PendingCall("p1", "pay", "1:p1")]
        await session.finish("awaiting_approval", calls=calls, snapshot=_snapshot("p1"))
        await session.close()

        async def claimable() -> list[str]:
            found = await clients().claimable_runs(
                agent_refs=[f"mod:{rid}"], agent_names=[], queue="default", limit=10
            )
            return [r.id for r in wire(found)]

        assert await claimable() == []
        await clients().decide(rid, "p1", approve=True)
        assert await claimable() == [rid]
        again = await _open(clients(), spec)
        assert again.record.status == "running"
        await again.close()

    run(go)


# -- forks ---------------------------------------------------------------------------------------


async def _forkable(engine: Engine, rid: str) -> list[JournalRecord]:
    """A completed run of steps 1 to 7: attempt, model #1, tool 1:a, model #2, tool 2:b, its
    attempt's end, the outcome (the events a runtime writes with each entry)."""
    session = await _open(engine, replace(_spec(rid), agent_ref="app.agents:echo"))
    for ordinal, call in ((0, "a"), (1, "b")):
        await session.append(
            journal=JournalEntry("model", str(ordinal), f"fp{ordinal}", {"response": ordinal}),
            events=[NewEvent("model_call", {"ordinal": ordinal, "agent": "echo"})],
            usage=UsageDelta(model_calls=1, input_tokens=5),
        )
        key = f"{ordinal + 1}:{call}"
        await session.append(
            journal=JournalEntry("tool", key, None, {"output": call}),
            events=[NewEvent("tool_call", {"name": "t", "call_id": call, "key": key})],
            usage=UsageDelta(tool_calls=1),
        )
    await session.finish("completed", final_output={"json": "done"})
    await session.close()
    return wire(await engine.read_journal(rid))


def test_a_fork_shares_the_journal_before_its_step_and_leaves_the_run_alone(
    clients: Clients,
) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        journal = await _forkable(engine, rid)
        source, events = await engine.get_run(rid), await engine.list_events(rid)
        # step 4 is model call #2: model #1 and tool 1:a are shared
        fork = wire(await clients().fork_run(rid, at=4, new_run_id=f"{rid}-f"))
        assert (fork.id, fork.status, fork.queue, fork.owner) == (
            f"{rid}-f",
            "queued",
            "default",
            None,
        )
        assert (fork.agent_name, fork.agent_ref, fork.input) == (
            source.agent_name,
            source.agent_ref,
            source.input,
        )
        assert fork.options == {**source.options, "forked_from": {"run_id": rid, "at": 4}}
        assert (fork.model_calls, fork.tool_calls, fork.input_tokens) == (0, 0, 0)
        copied = wire(await engine.read_journal(fork.id))
        assert [(e.seq, e.kind, e.key, e.fingerprint, e.payload) for e in copied] == [
            (1, "model", "0", "fp0", {"response": 0}),
            (2, "tool", "1:a", None, {"output": "a"}),
        ]
        assert [(e.type, e.payload) for e in wire(await engine.list_events(fork.id))] == [
            ("run_forked", {"from_run": rid, "at": 4, "model_calls": 1, "tool_outputs": 1}),
            ("run_queued", {"queue": "default", "agent_ref": "app.agents:echo"}),
        ]
        # the run forked is as it was
        assert await engine.get_run(rid) == source
        assert await engine.read_journal(rid) == journal
        assert await engine.list_events(rid) == events
        # opened, the fork resumes from what it shares, and writes on after it
        session = await _open(clients(), _spec_of_fork(fork))
        assert [(e.kind, e.key) for e in session.journal] == [("model", "0"), ("tool", "1:a")]
        await session.append(
            journal=JournalEntry("model", "1", "fp1", {"response": "new"}),
            events=[NewEvent("model_call", {"ordinal": 1, "agent": "echo"})],
        )
        await session.finish("completed", final_output={"json": "forked"})
        await session.close()
        assert [e.seq for e in await engine.read_journal(fork.id)] == [1, 2, 3]
        assert await engine.read_journal(rid) == journal

    run(go)


def _spec_of_fork(fork: RunRecord) -> RunSpec:
    return RunSpec(fork.id, fork.agent_name, fork.input, fork.input_fingerprint, fork.options)


@pytest.mark.parametrize(("at", "models", "tools"), [(1, 0, 0), (2, 0, 0), (3, 1, 0), (7, 2, 2)])
def test_a_fork_at_each_step_shares_what_came_before_it(
    clients: Clients, at: int, models: int, tools: int
) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        journal = await _forkable(engine, rid)
        fork = await engine.fork_run(rid, at=at, new_run_id=f"{rid}-{at}", queue=None)
        assert fork.queue is None  # on no queue: the caller opens it
        copied = await engine.read_journal(fork.id)
        assert [e.entry for e in copied] == [e.entry for e in journal[: models + tools]]
        events = await engine.list_events(fork.id)
        assert [e.type for e in events] == ["run_forked"]
        assert (events[0].payload["model_calls"], events[0].payload["tool_outputs"]) == (
            models,
            tools,
        )

    run(go)


def test_forking_again_is_the_same_fork_and_another_run_id_is_refused(clients: Clients) -> None:
    async def go() -> None:
        engine, rid = clients(), _rid()
        await _forkable(engine, rid)
        first = await engine.fork_run(rid, at=3, new_run_id=f"{rid}-f")
        assert wire(await clients().fork_run(rid, at=3, new_run_id=f"{rid}-f")) == first
        assert len(await engine.list_events(first.id)) == 2  # written once
        for at, taken in ((4, f"{rid}-f"), (3, rid)):
            with pytest.raises(RunInputMismatchError) as refused:
                await clients().fork_run(rid, at=at, new_run_id=taken)
            assert wired(refused.value).fields["what_changed"] == "fork"

    run(go)


def test_a_fork_of_an_unknown_run_or_outside_its_steps_is_refused_writing_nothing(
    clients: Clients,
) -> None:
    async def go() -> None:
        from runplane_durable.errors import ForkStepError

        engine, rid = clients(), _rid()
        await _forkable(engine, rid)
        with pytest.raises(RunNotFoundError):
            await engine.fork_run(f"{rid}-nope", at=1, new_run_id=f"{rid}-x")
        for at in (0, 8, -1):
            with pytest.raises(ForkStepError) as refused:
                await clients().fork_run(rid, at=at, new_run_id=f"{rid}-x")
            error = wired(refused.value)
            assert error.fields["last"] == 7
            assert isinstance(error, ValueError)
        with pytest.raises(RunNotFoundError):
            await engine.get_run(f"{rid}-x")

    run(go)


def test_a_fork_of_a_run_that_used_a_session_is_refused_writing_nothing(
    clients: Clients,
) -> None:
    async def go() -> None:
        from runplane_durable.errors import ForkSessionError

        engine, rid = clients(), _rid()
        session = await _open(engine, replace(_spec(rid), agent_ref="app.agents:echo"))
        await session.append(journal=JournalEntry("session", "0", None, {"op": "get"}))
        await session.append(
            journal=JournalEntry("model", "0", "fp0", {"response": 0}),
            events=[NewEvent("model_call", {"ordinal": 0, "agent": "echo"})],
        )
        await session.append(journal=JournalEntry("session", "1", None, {"op": "add"}))
        await session.finish("completed", final_output={"json": "done"})
        await session.close()
        for at in (1, 3):
            with pytest.raises(ForkSessionError) as refused:
                await clients().fork_run(rid, at=at, new_run_id=f"{rid}-x")
            error = wired(refused.value)
            assert error.fields == {"run_id": rid, "session_steps": 2}
            assert isinstance(error, ValueError)
        with pytest.raises(RunNotFoundError):
            await engine.get_run(f"{rid}-x")

    run(go)


# -- durable sessions (`DurableSession`): a conversation's items, kept with the runs -------------


def _sid() -> str:
    return f"session-{uuid.uuid4().hex[:10]}"


def test_a_session_keeps_its_items_in_order_for_every_client(clients: Clients) -> None:
    async def go() -> None:
        writer, reader, sid = clients(), clients(), _sid()
        assert await reader.session_items(sid) == []  # never written: empty, not an error
        first = [{"role": "user", "content": "héllo \ud800 \x00"}, {"type": "x", "n": [1, 2.5]}]
        assert await writer.add_session_items(sid, first, write_key="w1") is True
        assert await writer.add_session_items(sid, [{"n": 3}], write_key="w2") is True
        assert await reader.session_items(sid) == [*first, {"n": 3}]
        assert await reader.session_items(sid, limit=2) == [first[1], {"n": 3}]
        assert await reader.session_items(sid, limit=0) == []
        assert await reader.session_items(_sid()) == []  # sessions are apart

    run(go)


def test_a_session_write_sent_again_under_its_key_writes_nothing(clients: Clients) -> None:
    async def go() -> None:
        engine, sid = clients(), _sid()
        assert await engine.add_session_items(sid, [{"a": 1}], write_key="turn-1#0") is True
        again = clients()  # another process sending the same write (a lost answer, a resume)
        assert await again.add_session_items(sid, [{"a": 1}], write_key="turn-1#0") is False
        assert await engine.add_session_items(sid, [], write_key="empty") is True
        assert await engine.session_items(sid) == [{"a": 1}]

    run(go)


def test_a_session_pops_its_latest_item_and_clears(clients: Clients) -> None:
    async def go() -> None:
        engine, sid = clients(), _sid()
        assert await engine.pop_session_item(sid) is None
        await engine.add_session_items(sid, [{"n": 1}, {"n": 2}], write_key="k")
        assert await engine.pop_session_item(sid) == {"n": 2}
        await engine.add_session_items(sid, [{"n": 3}], write_key="k2")
        assert await engine.session_items(sid) == [{"n": 1}, {"n": 3}]
        await engine.clear_session(sid)
        assert await engine.session_items(sid) == []
        # Cleared with its write keys: the same key writes again.
        assert await engine.add_session_items(sid, [{"n": 4}], write_key="k") is True
        assert await engine.session_items(sid) == [{"n": 4}]

    run(go)


def test_concurrent_session_writes_each_land_whole_and_once(clients: Clients) -> None:
    async def go() -> None:
        sid = _sid()
        writers = [clients() for _ in range(4)]

        async def write(w: int, engine: Engine) -> None:
            for turn in range(3):
                batch = [{"w": w, "t": turn, "i": i} for i in range(3)]
                await engine.add_session_items(sid, batch, write_key=f"{w}-{turn}")

        await asyncio.gather(*(write(w, e) for w, e in enumerate(writers)))
        items = await writers[0].session_items(sid)
        assert len(items) == 4 * 3 * 3
        for start in range(0, len(items), 3):  # each write's items together, in their order
            batch = items[start : start + 3]
            assert [i["i"] for i in batch] == [0, 1, 2]
            assert len({(i["w"], i["t"]) for i in batch}) == 1

    run(go)


def test_what_no_session_can_hold_is_refused_saying_why(clients: Clients) -> None:
    from runplane_durable.errors import JournalSerializationError, UnstorableNameError

    async def go() -> None:
        engine = clients()
        with pytest.raises(UnstorableNameError, match="session id") as bad_id:
            await engine.session_items("nul\x00id")
        wired(bad_id.value)
        with pytest.raises(UnstorableNameError, match="session id"):
            await engine.add_session_items(" ", [{}], write_key="k")
        with pytest.raises(UnstorableNameError, match="write key") as bad_key:
            await engine.add_session_items(_sid(), [{}], write_key="")
        wired(bad_key.value)
        with pytest.raises(JournalSerializationError, match="must be JSON data"):
            await engine.add_session_items(_sid(), [{"when": object()}], write_key="k")
        with pytest.raises(ValueError, match="limit must be a count"):
            await engine.session_items(_sid(), limit=-1)

    run(go)
