"""A run's events as Server-Sent Events from a real uvicorn, while a program writes them: live
delivery, resuming with Last-Event-ID (or ?after=) with no gap and no duplicate, the end once the
run is finished, a run awaiting approval kept open, keep-alives, and a client that goes away
stopping the server's work for it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from runplane_durable import LocalEngine
from runplane_durable.engine import Engine, RunSession
from runplane_durable.local.schema import events, runs
from runplane_durable.records import EventRecord, NewEvent, RunSpec
from runplane_durable.server.app import ServerSettings, create_app
from sqlalchemy.engine import Connection
from support.served_app import served

# Short, so the tests wait little; the defaults are 0.2 s, 2 s and 15 s (test_live_fanout.py
# waits for notifications alone).
SETTINGS = ServerSettings(poll_seconds=0.05, fallback_poll_seconds=0.05, keepalive_seconds=0.5)


class Counting:
    """An engine that counts the event reads it serves, to see a stream's polling stop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.event_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    async def list_events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> Any:
        self.event_reads += 1
        return await self.engine.list_events(run_id, after=after, limit=limit)


@pytest.fixture(scope="module")
def counting(store: str) -> Counting:
    return Counting(LocalEngine(store))


@pytest.fixture(scope="module")
def live(store: str, counting: Counting) -> Iterator[str]:
    with served(create_app(counting, SETTINGS)) as url:  # type: ignore[arg-type]
        yield url


@pytest.fixture(scope="module")
def notified(store: str) -> Iterator[str]:
    """A server whose streams on PostgreSQL hear of new events by NOTIFY alone (its fallback
    poll is longer than any test); on SQLite it polls as `live` does."""
    settings = ServerSettings(poll_seconds=0.05, fallback_poll_seconds=600, keepalive_seconds=0.5)
    with served(create_app(LocalEngine(store), settings)) as url:
        yield url


@pytest.fixture(params=["polled", "notified"])
def either(request: pytest.FixtureRequest) -> str:
    """Each of the two servers: the stream's semantics hold however it learns of events."""
    url: str = request.getfixturevalue("live" if request.param == "polled" else "notified")
    return url


@dataclass
class Message:
    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)
    comment: list[str] = field(default_factory=list)

    @property
    def record(self) -> EventRecord:
        return EventRecord.from_json(json.loads("\n".join(self.data)))


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The stream's messages (events, and keep-alive comments), as SSE frames them."""
    current = Message()
    async for line in response.aiter_lines():
        if line == "":
            if current.data or current.comment or current.id is not None:
                yield current
            current = Message()
        elif line.startswith(":"):
            current.comment.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                current.data.append(value)
            elif name in ("id", "event"):
                setattr(current, name, value)


def stream_url(live: str, run_id: str) -> str:
    return f"{live}/api/v1/runs/{quote(run_id, safe='')}/events/stream"


async def _start(engine: Engine, run_id: str) -> RunSession:
    return await engine.open_run(RunSpec(run_id, "echo", {}, "fp", {}), lease_seconds=30)


def _step(n: int) -> NewEvent:
    return NewEvent("progress", {"n": n})


def test_reconnecting_with_last_event_id_gets_exactly_the_rest(store: str, either: str) -> None:
    live = either

    async def go() -> None:
        engine, run_id = LocalEngine(store), f"sse/{uuid.uuid4().hex[:8]} ✓"
        session = await _start(engine, run_id)
        await session.append(events=[_step(1), _step(2)])
        seen: list[EventRecord] = []
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream("GET", stream_url(live, run_id)) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                async for message in messages(response):
                    if not message.data:
                        continue
                    record = message.record
                    assert (message.id, message.event) == (str(record.seq), record.type)
                    seen.append(record)
                    if record.seq == 3:  # live: written after the stream began
                        break
                    if record.seq == 2:
                        await session.append(events=[_step(3)])
            # Disconnected after seq 3; meanwhile the run goes on.
            await session.append(events=[_step(4), _step(5)])
            headers = {"Last-Event-ID": str(seen[-1].seq)}
            url = stream_url(live, run_id) + "?after=1"  # the header wins over the URL's after
            async with client.stream("GET", url, headers=headers) as response:
                ended = False
                async for message in messages(response):
                    if message.data:
                        seen.append(message.record)
                        if message.record.seq == 5:
                            await session.append(events=[_step(6)])
                            await session.finish("completed", final_output={"json": 1})
                ended = True  # the server closed the stream: the run is finished
            assert ended
        await session.close()
        stored = await engine.list_events(run_id)
        assert seen == stored  # every event once, in order, exactly as stored
        assert [e.type for e in seen[-2:]] == ["attempt_ended", "run_completed"]
        await engine.dispose()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_after_resumes_and_a_finished_run_streams_its_history_then_ends(
    store: str, either: str
) -> None:
    live = either

    async def go() -> None:
        engine, run_id = LocalEngine(store), f"sse-done-{uuid.uuid4().hex[:8]}"
        session = await _start(engine, run_id)
        await session.append(events=[_step(i) for i in range(1, 700)])  # more than one page
        await session.finish("failed", error=RuntimeError("no"))
        await session.close()
        url = stream_url(live, run_id) + "?after=3"
        async with httpx.AsyncClient(timeout=30) as client, client.stream("GET", url) as response:
            seqs = [int(m.id) async for m in messages(response) if m.id is not None]
        assert seqs == list(range(4, 703))
        await engine.dispose()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_run_awaiting_approval_keeps_its_stream_open_with_keepalives(
    store: str, either: str
) -> None:
    live = either

    async def go() -> None:
        engine, run_id = LocalEngine(store), f"sse-wait-{uuid.uuid4().hex[:8]}"
        session = await _start(engine, run_id)
        await session.finish("awaiting_approval")
        await session.close()
        types: list[str] = []
        pings = 0
        url = stream_url(live, run_id)
        async with httpx.AsyncClient(timeout=30) as client, client.stream("GET", url) as response:
            async for message in messages(response):
                if message.comment:
                    pings += 1
                    if pings == 2:  # kept open past the outcome, with keep-alives
                        resumed = await _start(engine, run_id)  # approved: it runs again
                        await resumed.finish("completed", final_output={"json": "ok"})
                        await resumed.close()
                else:
                    types.append(message.event or "")
        assert types[:3] == ["attempt_started", "attempt_ended", "run_awaiting_approval"]
        assert types[-2:] == ["attempt_ended", "run_completed"]  # then the end
        await engine.dispose()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_client_that_goes_away_stops_the_polling(
    store: str, live: str, counting: Counting
) -> None:
    async def go() -> None:
        engine, run_id = LocalEngine(store), f"sse-gone-{uuid.uuid4().hex[:8]}"
        session = await _start(engine, run_id)
        url = stream_url(live, run_id)
        async with httpx.AsyncClient(timeout=30) as client, client.stream("GET", url) as response:
            first = asyncio.Event()

            async def read() -> None:
                async for _ in messages(response):
                    first.set()

            reading = asyncio.ensure_future(read())
            await first.wait()  # the first event: the stream is polling now
            before = counting.event_reads
            await asyncio.sleep(0.5)
            assert counting.event_reads > before  # polling while connected
            reading.cancel()
        await asyncio.sleep(0.5)  # the connection is closed; the server notices
        stopped = counting.event_reads
        await asyncio.sleep(0.5)
        assert counting.event_reads == stopped
        await session.release()
        await session.close()
        await engine.dispose()

    asyncio.run(asyncio.wait_for(go(), 60))


@pytest.mark.parametrize("header", ["abc", "-1", "1.5", "", "9" * 30, "1000000000"])
def test_a_last_event_id_that_is_no_seq_is_a_400(live: str, header: str) -> None:
    response = httpx.get(stream_url(live, "any"), headers={"Last-Event-ID": header}, timeout=30)
    assert response.status_code == 400
    assert "Last-Event-ID must be the seq" in response.json()["error"]["message"]


def test_an_unknown_run_is_a_404_before_any_stream(live: str) -> None:
    started = time.monotonic()
    response = httpx.get(stream_url(live, "no-such-run"), timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "run_not_found"
    assert time.monotonic() - started < 5


def test_a_stream_ends_when_its_run_is_deleted_meanwhile(store: str, live: str) -> None:
    """A run pruned (or deleted by hand) while watched: nothing more will come, the stream ends."""

    def delete(conn: Connection, run_id: str) -> None:
        conn.execute(events.delete().where(events.c.run_id == run_id))
        conn.execute(runs.delete().where(runs.c.id == run_id))
        conn.commit()

    async def go() -> None:
        engine, run_id = LocalEngine(store), f"sse-gone-{uuid.uuid4().hex[:8]}"
        session = await _start(engine, run_id)
        url = stream_url(live, run_id)
        async with httpx.AsyncClient(timeout=30) as client, client.stream("GET", url) as response:
            seen = 0
            async for message in messages(response):
                if message.data:
                    seen += 1
                    await engine.database.call(delete, run_id)
        assert seen == 1  # its first event, then the end
        await session.close()
        await engine.dispose()

    asyncio.run(asyncio.wait_for(go(), 60))
