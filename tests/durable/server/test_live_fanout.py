"""Live fan-out on PostgreSQL: every transaction that adds events to a run NOTIFYs, and a
`runplane server` wakes its event streams on the notifications of one listening connection,
whichever process or server wrote (its fallback poll set far longer than any wait here, so an
event that arrives came by NOTIFY), and goes on after that connection is killed: no gap, no
duplicate."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from runplane_durable import LocalEngine
from runplane_durable.errors import RunCancelledError
from runplane_durable.events import PendingCall
from runplane_durable.local import pg_steps, sql
from runplane_durable.records import (
    Approval,
    EventRecord,
    NewEvent,
    RunSpec,
    Snapshot,
)
from runplane_durable.remote_engine import RemoteEngine
from runplane_durable.server.app import ServerSettings
from support.durable import fresh_pg_database
from support.durable_server import Server, running_server

# Far past every deadline below: an event that arrives in time was not found by polling.
FALLBACK = "60"
DEADLINE = 30.0  # seconds for an event to reach a stream; it takes milliseconds


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    yield from fresh_pg_database()


@pytest.fixture(scope="module")
def two_servers(pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Server A (defaults) and server B (a fallback poll of a minute) on one PostgreSQL."""
    logs = tmp_path_factory.mktemp("fanout")
    with running_server(pg, logs / "a.log") as a:
        args = ["--fallback-poll", FALLBACK]
        with running_server(pg, logs / "b.log", args=args) as b:
            yield [a, b]


class Notices:
    """A LISTEN of our own on the events channel: which runs each operation notified."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.got: list[str] = []
        self._barriers = 0

    async def __aenter__(self) -> Notices:
        self._listen = await asyncpg.connect(_dsn(self.url))
        self._send = await asyncpg.connect(_dsn(self.url))
        await self._listen.add_listener(sql.EVENTS_CHANNEL, self._heard)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._listen.close()
        await self._send.close()

    def _heard(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.got.append(payload)

    async def watch(self, run_id: str) -> None:
        """Watch the run as a server's listener does: writers notify only watched runs."""
        lock = "SELECT pg_advisory_lock_shared($1, hashtext($2))"
        await self._listen.execute(lock, sql.WATCH_LOCK_CLASS, run_id)

    async def since_last(self) -> list[str]:
        """The runs notified since the last call: notifications arrive in commit order, so
        once a marker sent now arrives, every one committed before it has."""
        self._barriers += 1
        marker = f"barrier-{self._barriers}"
        await self._send.execute("SELECT pg_notify($1, $2)", sql.EVENTS_CHANNEL, marker)
        deadline = time.monotonic() + DEADLINE
        while marker not in self.got:
            assert time.monotonic() < deadline, f"{marker} never arrived"
            await asyncio.sleep(0.01)
        heard = self.got[: self.got.index(marker)]
        del self.got[: self.got.index(marker) + 1]
        return heard


def _spec(run_id: str, **more: Any) -> RunSpec:
    return RunSpec(run_id, "echo", {}, "fp", {}, **more)


def test_every_transaction_that_logs_events_notifies_and_only_those(pg: str) -> None:
    async def go() -> None:
        engine = LocalEngine(pg)
        run_id, other, queued = (f"notify-{uuid.uuid4().hex[:8]}" for _ in range(3))
        async with Notices(pg) as notices:
            for watched in (run_id, other, queued):
                await notices.watch(watched)
            await notices.since_last()
            session = await engine.open_run(_spec(run_id), lease_seconds=30)  # create_run
            assert await notices.since_last() == [run_id]
            await session.append(events=[NewEvent("progress", {"n": 1})])  # append
            assert await notices.since_last() == [run_id]
            await session.append(journal=None, events=[NewEvent("a"), NewEvent("b")])
            assert await notices.since_last() == [run_id]  # one per transaction
            await session.heartbeat()  # no events: no notification
            assert await notices.since_last() == []
            await engine.cancel_run(run_id, mode="after_turn")  # cancel asked of its holder
            assert await notices.since_last() == [run_id]
            await session.release()  # release (attempt_ended)
            await session.close()
            assert await notices.since_last() == [run_id]
            # claimed again: a pending cancel no process carries out is carried out now
            with pytest.raises(RunCancelledError):
                await engine.open_run(_spec(run_id), lease_seconds=30)
            assert await notices.since_last() == [run_id]

            session = await engine.open_run(_spec(other), lease_seconds=30)
            await session.release()
            await session.close()
            await notices.since_last()
            session = await engine.open_run(_spec(other), lease_seconds=30)  # claim
            assert await notices.since_last() == [other]
            await session.finish("completed", final_output={"json": 1})  # finish
            await session.close()
            assert await notices.since_last() == [other]

            await engine.enqueue_run(_spec(queued, queue="default"))  # enqueue_run
            assert await notices.since_last() == [queued]
            await engine.enqueue_run(_spec(queued, queue="default"))  # the same: nothing new
            assert await notices.since_last() == []
            await engine.cancel_run(queued)  # cancelled at once
            assert await notices.since_last() == [queued]

            # Stopped for approval (its snapshot and calls stored), then decided from elsewhere.
            waiting = f"notify-{uuid.uuid4().hex[:8]}"
            await notices.watch(waiting)
            session = await engine.open_run(_spec(waiting), lease_seconds=30)
            await notices.since_last()
            snapshot = Snapshot(
                state={"any": "state"},
                model_calls=1,
                approvals=[Approval("p1", "pay", '{"amount":5}', "payer", "1:p1")],
            )
            calls = [PendingCall("p1", "pay", "1:p1")]
            await session.finish("awaiting_approval", calls=calls, snapshot=snapshot)
            await session.close()
            assert await notices.since_last() == [waiting]
            await engine.decide(waiting, "p1", approve=True, by="test")  # approval_decided
            assert await notices.since_last() == [waiting]
            await engine.decide(waiting, "p1", approve=True, by="test")  # the same: nothing new
            assert await notices.since_last() == []

            # Nobody watches this one: its writers notify nobody (no commit waits its turn).
            unwatched = f"notify-{uuid.uuid4().hex[:8]}"
            session = await engine.open_run(_spec(unwatched), lease_seconds=30)
            await session.append(events=[NewEvent("progress", {"n": 1})])
            await session.finish("completed", final_output={"json": 1})
            await session.close()
            await engine.enqueue_run(_spec(f"{unwatched}-q", queue="default"))
            assert await notices.since_last() == []
        await engine.dispose()

    asyncio.run(asyncio.wait_for(go(), 120))


def test_no_event_is_written_without_its_notification() -> None:
    """A new way of logging events cannot forget to notify: sql.py inserts events only in
    `log_events`, and each of pg_steps' statements that inserts events also notifies."""
    tree = ast.parse(inspect.getsource(sql))
    users = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(n, ast.Name) and n.id == "_INSERT_EVENTS" for n in ast.walk(node))
    }
    assert users == {"log_events"}, "insert events with sql.log_events: it notifies"
    statements = [
        value
        for name, value in vars(pg_steps).items()
        if name.startswith("_") and isinstance(value, str) and "INSERT INTO" in value
    ]
    assert statements
    for statement in statements:
        if "INSERT INTO runplane_events" in statement:
            assert f"pg_notify('{sql.EVENTS_CHANNEL}'" in statement, statement
            assert "pg_try_advisory_xact_lock" in statement, "only a watched run notifies"
            assert "FROM notified" in statement, "a SELECT CTE runs only where it is read"


async def _stream(url: str, run_id: str, after: int = 0) -> AsyncIterator[EventRecord]:
    """The events of a server's stream of `run_id`, until it ends."""
    path = f"{url}/api/v1/runs/{quote(run_id, safe='')}/events/stream?after={after}"
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", path) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                yield EventRecord.from_json(json.loads(line[6:]))


async def _next(events: AsyncIterator[EventRecord]) -> EventRecord:
    return await asyncio.wait_for(events.__anext__(), DEADLINE)


async def _listeners(pg: str) -> set[int]:
    conn = await asyncpg.connect(_dsn(pg))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'runplane-listen' "
            "AND datname = current_database()"
        )
    finally:
        await conn.close()
    return {row["pid"] for row in rows}


async def _until(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while not (found := await condition()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
    return found


def test_a_stream_on_one_server_gets_what_a_run_writes_through_another(
    pg: str, two_servers: list[Server]
) -> None:
    a, b = two_servers

    async def go() -> None:
        await _until(lambda: _pg_count(pg, 2), "both servers listen")
        writer = RemoteEngine(a.url)
        run_id = f"fanout-{uuid.uuid4().hex[:8]}"
        session = await writer.open_run(_spec(run_id), lease_seconds=30)
        events = _stream(b.url, run_id)
        seen = [await _next(events)]  # attempt_started, from the first read
        others = [_stream(b.url, run_id) for _ in range(3)]
        for other in others:
            assert (await _next(other)).seq == 1
        assert len(await _listeners(pg)) == 2  # one per server, however many streams
        for n in range(1, 6):  # each written after the stream waits: only NOTIFY wakes it
            await session.append(events=[NewEvent("progress", {"n": n})])
            seen.append(await _next(events))
            assert seen[-1].payload == {"n": n}
        await session.finish("completed", final_output={"json": "done"})
        await session.close()
        seen += [await _next(events), await _next(events)]
        with pytest.raises(StopAsyncIteration):  # the run is finished: the stream ends
            await _next(events)
        assert seen == await writer.list_events(run_id)
        for other in others:  # the other streams of the run got the same, and ended
            assert [e async for e in other] == seen[1:]
        await writer.dispose()

    asyncio.run(asyncio.wait_for(go(), 180))


async def _pg_count(pg: str, n: int) -> bool:
    return len(await _listeners(pg)) >= n


def test_the_listener_reconnects_and_its_streams_lose_nothing(
    pg: str, two_servers: list[Server]
) -> None:
    """Its connection killed (pg_terminate_backend) while a stream waits and a run writes: the
    events written while it was away come when it is back, then every later one; each once."""
    _, b = two_servers

    async def go() -> None:
        before = await _until(lambda: _listeners_if(pg, 2), "both servers listen")
        engine = LocalEngine(pg)  # an embedded program writes the run
        run_id = f"relisten-{uuid.uuid4().hex[:8]}"
        session = await engine.open_run(_spec(run_id), lease_seconds=30)
        events = _stream(b.url, run_id)
        seen = [await _next(events)]
        admin = await asyncpg.connect(_dsn(pg))
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", before)
        await session.append(events=[NewEvent("while-away", {"n": 1})])  # maybe unheard
        seen.append(await _next(events))  # read once the listener is back
        gone = frozenset(before)
        await _until(lambda: _listeners_if(pg, 2, without=gone), "the listeners reconnect")
        for n in range(2, 5):
            await session.append(events=[NewEvent("progress", {"n": n})])
            seen.append(await _next(events))
        await session.finish("completed", final_output={"json": "done"})
        await session.close()
        seen += [await _next(events), await _next(events)]
        with pytest.raises(StopAsyncIteration):
            await _next(events)
        await admin.close()
        stored = await engine.list_events(run_id)
        assert seen == stored  # no gap, no duplicate, in order
        await engine.dispose()

    asyncio.run(asyncio.wait_for(go(), 180))
    log = b.log.read_text()
    assert "not listening for run events" in log
    assert re.search(r"listening for run events on the .* again", log)


async def _listeners_if(pg: str, n: int, without: frozenset[int] = frozenset()) -> set[int] | None:
    found = await _listeners(pg)
    return found if len(found - without) >= n else None


@pytest.mark.parametrize(
    "settings",
    [{"poll_seconds": 0}, {"fallback_poll_seconds": -1.0}, {"keepalive_seconds": float("nan")}],
)
def test_stream_intervals_must_be_positive_seconds(settings: dict[str, float]) -> None:
    name = next(iter(settings))
    with pytest.raises(ValueError, match=f"{name} must be a positive number of seconds"):
        ServerSettings(**settings)  # type: ignore[arg-type]


def test_the_fallback_poll_is_a_server_option(tmp_path: Path) -> None:
    """`runplane server --fallback-poll` reaches the settings; nonsense is refused."""
    from runplane_durable.cli.server import server

    assert "fallback_poll" in inspect.signature(server).parameters
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "runplane", "server", "--fallback-poll", "0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert re.search(r"--fallback-poll", done.stderr)


def test_sqlite_and_remote_engines_have_no_feed_so_streams_poll(tmp_path: Path) -> None:
    """SQLite cannot notify (a server's streams poll it); a RemoteEngine is not `Notifying`:
    its clients read the server's stream, which is."""
    from runplane_durable.engine import Notifying

    async def go() -> None:
        engine = LocalEngine(f"sqlite:///{tmp_path / 'runs.db'}")
        assert isinstance(engine, Notifying)
        assert await engine.event_feed() is None
        await engine.dispose()

    asyncio.run(go())
    assert not isinstance(RemoteEngine("http://127.0.0.1:9"), Notifying)


def test_a_listener_holds_a_watch_lock_exactly_while_a_run_is_watched(pg: str) -> None:
    """What makes writers notify a run: the listener's shared advisory lock on it, taken when
    its first watch begins (the watch then woken, to read what came before) and given back when
    its last one ends."""

    async def held(run_id: str) -> bool:
        conn = await asyncpg.connect(_dsn(pg))
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = "
                    "'ShareLock' AND classid = $1::bigint::oid "
                    "AND objid = (hashtext($2)::bigint & 4294967295)::oid",
                    sql.WATCH_LOCK_CLASS,
                    run_id,
                )
            )
        finally:
            await conn.close()

    async def go() -> None:
        engine = LocalEngine(pg)
        feed = await engine.event_feed()
        assert feed is not None
        run_id = f"locked-{uuid.uuid4().hex[:8]}"
        session = await engine.open_run(_spec(run_id), lease_seconds=30)
        with feed.watch(run_id) as first:
            assert await first.wait(DEADLINE)  # woken once the lock is held
            assert await held(run_id)
            with feed.watch(run_id) as second:
                await session.append(events=[NewEvent("progress", {"n": 1})])
                assert await first.wait(DEADLINE)
                assert await second.wait(DEADLINE)
            assert await held(run_id)  # one watch is left
        await _until(lambda: _not(held(run_id)), "the lock is given back")
        await session.release()
        await session.close()
        await engine.dispose()

    asyncio.run(asyncio.wait_for(go(), 120))


async def _not(value: Any) -> bool:
    return not await value
