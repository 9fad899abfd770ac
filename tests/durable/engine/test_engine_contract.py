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
from pathlib import Path
from typing import Any

import pytest
from runplane_durable import LocalEngine
from runplane_durable.engine import Engine, RunSession, open_engine
from runplane_durable.errors import (
    DatabaseError,
    DurableError,
    RunCancelledError,
    RunFinishedError,
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
