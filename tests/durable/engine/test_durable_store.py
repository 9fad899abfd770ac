"""The run database: where it lives, and every way it can be unusable, each with a clear error."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import runplane_durable.local.engine as local
from agents import Agent
from agents.testing import ScriptedModel, assistant_message
from runplane_durable import (
    DatabaseError,
    DurableBackend,
    LocalEngine,
    RunLeasedError,
    SchemaVersionError,
    run_id,
)
from runplane_durable.engine import RunSession
from runplane_durable.local import sql
from runplane_durable.local import sqlite as sqlite_store
from runplane_durable.local.database import Database, resolve_url
from runplane_durable.local.schema import SCHEMA_VERSION
from runplane_durable.local.sqlite import CHECKPOINT_EVERY
from runplane_durable.records import JournalEntry, NewEvent, RunSpec, UsageDelta
from support.durable import run_async, sqlite_url


def _agent(text: str = "hi") -> Agent[Any]:
    return Agent(name="echo", model=ScriptedModel([[assistant_message(text)]]))


def test_default_database_is_sqlite_under_dot_runplane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNPLANE_DATABASE_URL", raising=False)
    assert resolve_url() == f"sqlite:///{tmp_path / '.runplane' / 'runplane.db'}"
    DurableBackend().run_sync(_agent(), "x")
    assert (tmp_path / ".runplane" / "runplane.db").exists()
    journal_mode = sqlite3.connect(tmp_path / ".runplane" / "runplane.db").execute(
        "PRAGMA journal_mode"
    )
    assert journal_mode.fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("runs.db", "sqlite:///{cwd}/runs.db"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite+aiosqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgres://u@h:5433/db", "postgresql+asyncpg://u@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_urls_users_already_know_are_accepted(
    given: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", given)
    assert resolve_url() == expected.format(cwd=tmp_path)


def test_unsupported_database_is_refused_without_leaking_the_password() -> None:
    with pytest.raises(DatabaseError, match="does not support") as info:
        resolve_url("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(info.value)


def test_corrupt_database_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    garbage = b"this is not a database, it is a shopping list\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(DatabaseError) as info:
        DurableBackend(LocalEngine(str(path))).run_sync(_agent(), "x")
    message = str(info.value)
    assert "not a SQLite database or it is corrupt" in message
    assert "Move the file aside" in message
    assert path.read_bytes() == garbage


def test_database_under_a_file_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(DatabaseError, match="cannot create the directory") as info:
        DurableBackend(LocalEngine(str(blocker / "runs.db"))).run_sync(_agent(), "x")
    assert "writable location" in str(info.value)


def test_read_only_database_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    DurableBackend(LocalEngine(str(path))).run_sync(_agent(), "x")
    uri = f"sqlite:///file:{path}?mode=ro&uri=true"
    with run_id("ro"), pytest.raises(DatabaseError) as info:
        DurableBackend(LocalEngine(uri)).run_sync(_agent(), "x")
    assert "not writable" in str(info.value)


def test_schema_from_a_newer_version_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with run_id("kept"):
        DurableBackend(LocalEngine(str(path))).run_sync(_agent("stored"), "x")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runplane_schema SET version = 99")
    with pytest.raises(SchemaVersionError) as info:
        DurableBackend(LocalEngine(str(path))).run_sync(_agent(), "y")
    assert "schema version 99" in str(info.value)
    assert "pip install -U runplane-durable" in str(info.value)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runplane_schema SET version = ?", (SCHEMA_VERSION,))
    assert run_async(LocalEngine(str(path)).get_run("kept")).final_output == {"json": "stored"}


OTHER = "elsewhere:1:other"


async def _open_as_other_process(engine: LocalEngine, spec: RunSpec) -> RunSession:
    original = local.current_owner
    local.current_owner = lambda: OTHER  # type: ignore[assignment]
    try:
        return await engine.open_run(spec, lease_seconds=30)
    finally:
        local.current_owner = original


async def _taken_over(engine: LocalEngine, spec: RunSpec) -> tuple[RunSession, RunSession]:
    """A run whose short lease expired, then claimed by another process."""
    stale = await engine.open_run(spec, lease_seconds=0.01)
    await asyncio.sleep(0.05)
    return stale, await _open_as_other_process(engine, spec)


def test_a_live_lease_refuses_a_second_executor(db_url: str) -> None:
    engine = LocalEngine(db_url)
    spec = RunSpec("leased", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        first = await engine.open_run(spec, lease_seconds=30)
        try:
            with pytest.raises(RunLeasedError) as info:
                await _open_as_other_process(engine, spec)
            assert "is being executed by" in str(info.value)
            assert "never executes twice" in str(info.value)
            await first.release()
            second = await engine.open_run(spec, lease_seconds=30)  # released: free again
            await second.close()
        finally:
            await first.close()
        await engine.dispose()

    run_async(go())


@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled"])
def test_a_claim_that_read_the_run_before_its_holder_finished_it_takes_nothing(
    db_url: str, outcome: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers racing for one run: the loser read it running, then its holder finished it
    (and so gave its lease up) before the loser's claim. The claim must fail, not reopen the
    finished run for a second attempt (which would run a failed or cancelled run again)."""
    engine = LocalEngine(db_url)
    spec = RunSpec(f"finished-{outcome}-{uuid.uuid4().hex[:6]}", "echo", {"text": "x"}, "fp", {})
    real_claim = sql.claim

    async def go() -> None:
        first = await engine.open_run(spec, lease_seconds=30)
        await first.append(journal=JournalEntry("model", "1", "fp", {"n": 1}))

        def claim_after_the_holder_finished(conn: Any, run_id: str, *args: Any) -> Any:
            # Between the claim's read of the run (running, held) and its fenced update.
            sql.finish(conn, run_id, first.record.owner, 1, [NewEvent("end")], outcome, *[None] * 3)
            return real_claim(conn, run_id, *args)

        monkeypatch.setattr(sql, "claim", claim_after_the_holder_finished)
        with pytest.raises(RunLeasedError):
            await _open_as_other_process(engine, spec)
        monkeypatch.setattr(sql, "claim", real_claim)
        run = await engine.get_run(spec.run_id)
        assert (run.status, run.owner) == (outcome, None)
        assert [e.type for e in await engine.list_events(spec.run_id)] == [
            "attempt_started",
            "end",  # no second attempt
        ]
        await first.close()  # its lease went with the finish: nothing to give back
        await engine.dispose()

    run_async(go())


def test_an_expired_lease_is_taken_over(tmp_path: Path) -> None:
    engine = LocalEngine(sqlite_url(tmp_path))
    spec = RunSpec("expired", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        stale, taker = await _taken_over(engine, spec)
        assert taker.record.owner == OTHER
        with pytest.raises(RunLeasedError, match="taken over by another process"):
            await stale.heartbeat()
        await taker.close()
        await stale.close()
        await engine.dispose()

    run_async(go())


def test_queued_writes_commit_in_order_before_the_session_closes(db_url: str) -> None:
    engine = LocalEngine(db_url)
    spec = RunSpec("queued", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        session = await engine.open_run(spec, lease_seconds=30)
        for i in range(5):
            await session.append(
                wait=False,
                journal=JournalEntry("tool", f"0:call-{i}", None, {"n": i}),
                events=[NewEvent("tool_call", {"n": i})],
                usage=UsageDelta(tool_calls=1),
            )
        await session.close()  # returns only once every queued write is committed
        journal = await engine.read_journal("queued")
        assert [(e.seq, e.key, e.payload) for e in journal] == [
            (i + 1, f"0:call-{i}", {"n": i}) for i in range(5)
        ]
        events = await engine.list_events("queued")
        assert [e.payload["n"] for e in events if e.type == "tool_call"] == list(range(5))
        # the attempt's start and end (never settled: its lease given back) bracket them
        assert [e.type for e in events] == ["attempt_started", *["tool_call"] * 5, "attempt_ended"]
        assert (await engine.get_run("queued")).tool_calls == 5
        await engine.dispose()

    run_async(go())


async def _append_then_next(session: RunSession, first: JournalEntry, second: JournalEntry) -> None:
    """Append `first` without waiting, then `second`: one of the two raises.

    On SQLite, with nothing ahead of it, the first write runs at once and raises itself; on
    PostgreSQL it is queued, and the second write raises its failure without being committed.
    """
    await session.append(wait=False, journal=first)
    await session.append(journal=second)


def test_a_write_without_waiting_still_stops_at_a_lost_lease(db_url: str) -> None:
    """A tool's output is committed without waiting; losing the lease meanwhile must still stop
    the run at its next step, with nothing written by the process that lost it."""
    engine = LocalEngine(db_url)
    spec = RunSpec("fenced", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        stale, taker = await _taken_over(engine, spec)
        with pytest.raises(RunLeasedError, match="taken over by another process"):
            await _append_then_next(
                stale,
                JournalEntry("tool", "0:late", None, {"n": 1}),
                JournalEntry("model", "1", "fp", {"n": 2}),
            )
        with pytest.raises(RunLeasedError):
            await stale.finish("completed", final_output={"json": "stale"})
        await stale.close()
        assert await engine.read_journal("fenced") == []
        run = await engine.get_run("fenced")
        assert (run.status, run.owner) == ("running", OTHER)
        await taker.close()
        await engine.dispose()

    run_async(go())


def test_a_queued_write_that_fails_is_raised_by_the_next_write(db_url: str) -> None:
    """Even when the next write would succeed on its own: steps after a lost one must not be
    committed, or the journal would have a hole that a replay could not fill. A statement the
    database refused is its answer, not a lost link: raised at once, never waited on for the
    retry bound (an hour here; it was, on PostgreSQL, which the deadline below would catch)."""
    engine = LocalEngine(db_url, retry_seconds=3600)
    spec = RunSpec("holed", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        session = await engine.open_run(spec, lease_seconds=30)
        await session.append(journal=JournalEntry("tool", "0:call-a", None, {"n": 1}))
        # The same key again breaks the journal's uniqueness: this write fails.
        with pytest.raises(DatabaseError):
            await _append_then_next(
                session,
                JournalEntry("tool", "0:call-a", None, {"n": 2}),
                JournalEntry("model", "1", "fp", {"n": 3}),
            )
        await session.close()
        assert [e.payload for e in await engine.read_journal("holed")] == [{"n": 1}]
        await engine.dispose()

    run_async(asyncio.wait_for(go(), 120))


def test_a_write_behind_another_is_queued_and_its_failure_raised_by_the_next(
    tmp_path: Path,
) -> None:
    """While another process holds SQLite's write lock, a step's write waits in its worker, never
    on the event loop, and the writes behind it queue up in order."""
    engine = LocalEngine(sqlite_url(tmp_path))
    spec = RunSpec("behind", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        session = await engine.open_run(spec, lease_seconds=30)
        await session.append(journal=JournalEntry("tool", "0:call-a", None, {"n": 1}))
        other = sqlite3.connect(tmp_path / "runs.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process is writing
        ahead = asyncio.ensure_future(
            session.append(journal=JournalEntry("tool", "0:call-b", None, {}))
        )
        await asyncio.sleep(0.2)  # the loop runs on while the write waits for the lock
        assert not ahead.done()
        await session.append(wait=False, journal=JournalEntry("tool", "0:call-a", None, {"n": 2}))
        other.execute("COMMIT")
        other.close()
        await ahead
        with pytest.raises(DatabaseError, match="UNIQUE"):
            await session.append(journal=JournalEntry("model", "1", "fp", {"n": 3}))
        with pytest.raises(DatabaseError):
            await session.finish("completed", final_output={"json": "x"})
        await session.close()
        journal = await engine.read_journal("behind")
        assert [e.key for e in journal] == ["0:call-a", "0:call-b"]
        await engine.dispose()

    run_async(go())


def test_the_wal_is_checkpointed_as_a_run_writes(tmp_path: Path) -> None:
    """SQLite's automatic checkpoints are off (they would fsync on the event loop); runplane runs
    them in its worker. Without them the WAL would grow with every step of every run."""
    engine = LocalEngine(sqlite_url(tmp_path))
    spec = RunSpec("long", "echo", {"text": "x"}, "fp", {})
    steps = 4 * CHECKPOINT_EVERY

    async def go() -> None:
        session = await engine.open_run(spec, lease_seconds=30)
        for i in range(steps):
            await session.append(
                journal=JournalEntry("tool", f"0:call-{i}", None, {"text": "x" * 200}),
                events=[NewEvent("tool_call", {"text": "x" * 200})],
            )
        await session.close()
        wal = (tmp_path / "runs.db-wal").stat().st_size
        # One step adds about 25 KiB to the WAL: unbounded, this would be about 10 MiB.
        assert wal < 1.5 * CHECKPOINT_EVERY * 25 * 1024, wal
        assert len(await engine.read_journal("long")) == steps
        await engine.dispose()

    run_async(go())


def test_a_failed_checkpoint_is_logged_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class RefusesCheckpoints:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self._conn = conn

        def execute(self, statement: str) -> sqlite3.Cursor:
            if "wal_checkpoint" in statement:
                raise sqlite3.OperationalError("disk I/O error")
            return self._conn.execute(statement)

    original = sqlite_store._driver
    monkeypatch.setattr(sqlite_store, "_driver", lambda conn: RefusesCheckpoints(original(conn)))
    engine = LocalEngine(sqlite_url(tmp_path))
    spec = RunSpec("unchecked", "echo", {"text": "x"}, "fp", {})

    async def go() -> None:
        session = await engine.open_run(spec, lease_seconds=30)
        await session.append(
            journal=JournalEntry("tool", "0:call-a", None, {"n": 1})
        )  # checkpoints first
        await session.close()
        assert [e.payload for e in await engine.read_journal("unchecked")] == [{"n": 1}]
        await engine.dispose()

    run_async(go())
    assert "WAL checkpoint" in caplog.text
    assert "disk I/O error" in caplog.text


def test_one_connection_never_runs_two_transactions_at_once(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path))

    async def go() -> None:
        tx = await database.transactions()
        first = asyncio.ensure_future(tx.call(sql.list_runs, 10, None))
        await asyncio.sleep(0)  # the first is now running in the worker
        with pytest.raises(RuntimeError, match="one transaction at a time"):
            await tx.call(sql.list_runs, 10, None)
        assert await first == []
        await tx.close()
        await database.dispose()

    run_async(go())


def test_a_sqlite_without_returning_learns_a_cancel_with_one_more_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 has no UPDATE ... RETURNING: a step reads the request instead."""
    url = sqlite_url(tmp_path)

    async def go() -> None:
        engine, asker = LocalEngine(url), LocalEngine(url)
        session = await engine.open_run(
            RunSpec("old-sqlite", "echo", {"text": "x"}, "fp", {}), lease_seconds=30
        )
        db = engine.database._sqlite
        assert db is not None
        monkeypatch.setattr(db.engine.dialect, "update_returning", False)
        await session.append(events=[NewEvent("a")])
        assert session.cancel_requested is None
        await asker.cancel_run("old-sqlite", mode="after_turn")
        await session.append(events=[NewEvent("b")])
        assert session.cancel_requested == "after_turn"
        await asker.cancel_run("old-sqlite")
        await session.heartbeat()
        assert session.cancel_requested == "immediate"
        await session.finish("cancelled")
        await session.close()
        types = [e.type for e in await engine.list_events("old-sqlite")]
        assert types == [
            "attempt_started",
            "a",
            "cancel_requested",
            "b",
            "cancel_requested",
            "attempt_ended",
            "run_cancelled",
        ]
        await engine.dispose()
        await asker.dispose()

    run_async(go())


def test_a_postgres_step_racing_a_cancel_request_runs_again_after_it(pg_url: str) -> None:
    """A step whose statement began before a cancelling process committed its event (so its
    snapshot cannot see it) takes the same event seq, fails whole, and runs once more after it.
    """
    import asyncpg

    rid = f"race-{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        engine = LocalEngine(pg_url)
        session = await engine.open_run(
            RunSpec(rid, "echo", {"text": "x"}, "fp", {}), lease_seconds=30
        )
        await session.append(events=[NewEvent("a")])
        asker = await asyncpg.connect(pg_url)
        try:
            async with asker.transaction():  # what cancel_run does, held open
                await asker.execute(
                    "UPDATE runplane_runs SET cancel_requested = 'immediate' WHERE id = $1", rid
                )
                await asker.execute(
                    "INSERT INTO runplane_events (run_id, seq, type, payload, created_at) "
                    "VALUES ($1, 3, 'cancel_requested', '{\"mode\": \"immediate\"}', 0)",
                    rid,
                )
                step = asyncio.ensure_future(session.append(events=[NewEvent("b")]))
                await asyncio.sleep(0.3)  # its statement is waiting for the run's row
                assert not step.done()
            await asyncio.wait_for(step, 30)
        finally:
            await asker.close()
        assert session.cancel_requested == "immediate"
        await session.append(events=[NewEvent("c")])
        await session.finish("cancelled")
        await session.close()
        events = await engine.list_events(rid)
        assert [(e.seq, e.type) for e in events] == [
            (1, "attempt_started"),
            (2, "a"),
            (3, "cancel_requested"),
            (4, "b"),
            (5, "c"),
            (6, "attempt_ended"),
            (7, "run_cancelled"),
        ]
        await engine.dispose()

    run_async(go())
