"""The remote engine against a real `runplane server`: what only a wire can do to a run.

Answers lost after the server committed (a proxy cuts the connection once the server answered):
the client asks again and the write is recognised, never written twice. A server that is not
there: a `ServerError` naming it. A holder this process knows is dead, taken over at once
through the server. The token, the event loops, bad requests, and which engine `open_engine`
chooses.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runplane_durable import (
    DatabaseError,
    LocalEngine,
    RemoteEngine,
    RunLeasedError,
    RunNotFoundError,
    ServerError,
)
from runplane_durable.engine import open_engine
from runplane_durable.owner import retire
from runplane_durable.records import JournalEntry, NewEvent, RunSpec, UsageDelta
from runplane_durable.session import JournaledSession
from support.durable import fresh_pg_database, sqlite_url
from support.durable_server import Server, running_server
from support.lossy_proxy import LossyProxy


@pytest.fixture(scope="module")
def remote_pg_url() -> Iterator[str]:
    yield from fresh_pg_database()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A server for the module, and the database it serves (read back directly by the tests)."""
    where = tmp_path_factory.mktemp(f"served-{request.param}")
    database = (
        sqlite_url(where)
        if request.param == "sqlite"
        else str(request.getfixturevalue("remote_pg_url"))
    )
    with running_server(database, where / "server.log") as server:
        yield server, database


def _rid() -> str:
    return f"remote-{uuid.uuid4().hex[:10]}"


def _spec(run_id: str) -> RunSpec:
    return RunSpec(run_id, "echo", {"text": "go"}, "fp-echo-go", {"mode": "run"})


async def _stored(database: str, run_id: str) -> tuple[Any, list[Any], list[Any]]:
    """The run, its journal and its events, read from the database itself."""
    engine = LocalEngine(database)
    try:
        return (
            await engine.get_run(run_id),
            await engine.read_journal(run_id),
            await engine.list_events(run_id),
        )
    finally:
        await engine.dispose()


async def _steps(session: Any) -> None:
    await session.append(
        journal=JournalEntry("model", "1", "fp", {"n": 1}),
        events=[NewEvent("model_call", {"ordinal": 0})],
        usage=UsageDelta(model_calls=1, total_tokens=5),
    )
    await session.append(
        journal=JournalEntry("tool", "0:call-a", None, {"json": "a"}),
        events=[NewEvent("tool_call", {"call_id": "call-a"})],
        usage=UsageDelta(tool_calls=1),
        wait=False,
    )
    await session.append(events=[NewEvent("progress", {})])
    await session.finish("completed", final_output={"json": "done"})
    await session.close()


@pytest.mark.parametrize(
    "lost",
    [
        "POST /api/v1/sessions ",  # the opening
        "POST /api/v1/sessions/append",
        "POST /api/v1/sessions/finish",
    ],
)
def test_a_lost_answer_is_asked_again_and_its_write_commits_once(
    served: tuple[Server, str], lost: str
) -> None:
    server, database = served
    rid = _rid()

    async def go() -> None:
        proxy = LossyProxy(server.port)
        await proxy.start()
        engine = RemoteEngine(proxy.url, retry_seconds=10)
        try:
            # For appends: all three steps' answers (two with journal entries, one of events)
            times = 3 if "append" in lost else 1
            proxy.lose_answers(lost, times=times)
            session = await engine.open_run(_spec(rid), lease_seconds=30)
            await _steps(session)
            assert proxy.dropped == times
            retried = [h for h in proxy.heads if b"retry=1" in h.split(b"\r\n")[0]]
            if "append" in lost or "finish" in lost:
                assert retried, "the write was not sent again as a retry"
        finally:
            await engine.dispose()
            await proxy.close()
        run, journal, events = await _stored(database, rid)
        assert (run.status, run.owner, run.final_output) == ("completed", None, {"json": "done"})
        assert (run.model_calls, run.tool_calls, run.total_tokens) == (1, 1, 5)  # counted once
        assert [(r.seq, r.key) for r in journal] == [(1, "1"), (2, "0:call-a")]
        assert [e.type for e in events] == [
            "attempt_started",
            "model_call",
            "tool_call",
            "progress",
            "attempt_ended",
            "run_completed",
        ]
        assert [e.seq for e in events] == list(range(1, 7))
        assert events[-2].payload["reason"] == "finished"

    asyncio.run(go())


def test_an_unreachable_server_is_a_server_error_naming_it() -> None:
    closed = Server("sqlite:///unused.db", Path("/dev/null"))  # a free port nobody listens on

    async def go() -> None:
        engine = RemoteEngine(closed.url, retry_seconds=0.3)
        try:
            with pytest.raises(ServerError) as opening:
                await engine.open_run(_spec(_rid()), lease_seconds=30)
            with pytest.raises(DatabaseError):  # a ServerError is one: the run cannot be kept
                await engine.get_run("x")
        finally:
            await engine.dispose()
        error = opening.value
        assert error.server == closed.url
        assert error.status is None
        assert "ConnectError" in (error.problem or "")
        message = str(error)
        assert f"cannot reach the runplane server at {closed.url}" in message
        assert "`runplane server`" in message
        assert "RUNPLANE_SERVER_URL" in message

    asyncio.run(go())


def test_a_server_that_answers_outside_the_api_is_a_server_error() -> None:
    """Another HTTP server at the URL (not a runplane server): said so, not retried forever."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nNot Found")
        await writer.drain()
        writer.close()

    async def go() -> None:
        other = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = other.sockets[0].getsockname()[1]
        engine = RemoteEngine(f"http://127.0.0.1:{port}", retry_seconds=1)
        try:
            with pytest.raises(ServerError, match="HTTP 404 and nothing of its API") as info:
                await engine.open_run(_spec(_rid()), lease_seconds=30)
            assert info.value.status == 404
            assert "`runplane server` of this version" in str(info.value)
            with pytest.raises(ServerError, match="HTTP 200 and nothing of its API"):
                await engine.get_run("x")  # a 200 that is not JSON
        finally:
            await engine.dispose()
            other.close()
            await other.wait_closed()

    asyncio.run(go())


def test_a_request_the_server_finds_malformed_is_a_value_error(served: tuple[Server, str]) -> None:
    """A local engine raises ValueError for arguments it cannot take; so does a remote one,
    with the server's message (here an append whose seq no client would send)."""
    server, _ = served

    async def go() -> None:
        engine = RemoteEngine(server.url)
        try:
            with pytest.raises(ValueError, match="'event_seq' of a Append must be an integer"):
                await engine._request(
                    "POST",
                    "/api/v1/sessions/append",
                    body={
                        "run_id": "r",
                        "owner": "o",
                        "lease_seconds": 1,
                        "journal_seq": 1,
                        "event_seq": 0,
                    },
                )
            with pytest.raises(ValueError, match="limit must be a count of runs"):
                await engine.list_runs(limit=-1)
            assert await engine.list_runs(limit=0) == []
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_a_holder_this_process_knows_ended_is_taken_over_at_once(
    served: tuple[Server, str],
) -> None:
    """The server cannot tell a holder of another process is dead unless it ran on the server's
    host; the client tells it of the ones it knows (its own host's, its own ended executions)."""
    server, database = served
    rid = _rid()

    async def go() -> None:
        engine = RemoteEngine(server.url)
        try:
            first = await engine.open_run(_spec(rid), lease_seconds=30)
            assert isinstance(first, JournaledSession)
            retire(first.owner)  # its execution ended without giving the lease back
            second = await RemoteEngine(server.url).open_run(_spec(rid), lease_seconds=30)
            assert second.record.owner != first.owner
            await second.close()
            live = await engine.open_run(_spec(rid), lease_seconds=30)  # a live holder: refused
            with pytest.raises(RunLeasedError, match="is being executed by"):
                await RemoteEngine(server.url).open_run(_spec(rid), lease_seconds=30)
            await live.close()
        finally:
            await engine.dispose()
        _, _, events = await _stored(database, rid)
        ended = [e.payload for e in events if e.type == "attempt_ended"]
        assert ended[0]["reason"] == "killed"  # known dead, not a lease that ran out

    asyncio.run(go())


def test_the_token_is_sent_as_a_bearer(served: tuple[Server, str]) -> None:
    server, _ = served

    async def go() -> None:
        proxy = LossyProxy(server.port)
        await proxy.start()
        with_token = RemoteEngine(proxy.url, token="s3cret")
        without = RemoteEngine(proxy.url, token="")
        try:
            session = await with_token.open_run(_spec(_rid()), lease_seconds=30)
            await session.close()
            assert proxy.heads
            assert all(b"authorization: bearer s3cret" in h.lower() for h in proxy.heads)
            proxy.heads.clear()
            with pytest.raises(RunNotFoundError):
                await without.get_run("x")
            assert proxy.heads
            assert not any(b"authorization" in h.lower() for h in proxy.heads)
        finally:
            await with_token.dispose()
            await without.dispose()
            await proxy.close()

    asyncio.run(go())


def test_one_engine_serves_successive_event_loops(served: tuple[Server, str]) -> None:
    """`run_sync` runs each call on a new loop: a client of a closed loop is never reused."""
    server, _ = served
    engine = RemoteEngine(server.url)

    async def one_run() -> str:
        session = await engine.open_run(_spec(_rid()), lease_seconds=30)
        await session.finish("completed", final_output={"json": 1})
        await session.close()
        return session.record.id

    for _ in range(3):
        rid = asyncio.run(one_run())
    assert asyncio.run(engine.get_run(rid)).status == "completed"
    asyncio.run(engine.dispose())


def test_a_session_polls_for_a_stop_asked_from_elsewhere(served: tuple[Server, str]) -> None:
    server, database = served
    rid = _rid()

    async def go() -> None:
        engine = RemoteEngine(server.url)
        try:
            session = await engine.open_run(_spec(rid), lease_seconds=30)
            assert session.cancel_requested is None
            assert await session.poll_cancel() is None
            await asyncio.to_thread(_ask_to_stop, database, rid)
            assert await session.poll_cancel() == "after_turn"
            assert session.cancel_requested == "after_turn"
            await session.close()
        finally:
            await engine.dispose()

    asyncio.run(go())


def _ask_to_stop(database: str, run_id: str) -> None:
    """What a cancel from another process stores (engineer C's `cancel_run` writes it)."""

    async def store() -> None:
        from runplane_durable.local.schema import runs

        engine = LocalEngine(database)
        try:
            tx = await engine.database.transactions()

            def update(conn: Any) -> None:
                conn.execute(
                    runs.update().where(runs.c.id == run_id).values(cancel_requested="after_turn")
                )
                conn.commit()

            await tx.call(update)
        finally:
            await engine.dispose()

    asyncio.run(store())


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/api/v1/sessions", b"{not json", "not JSON"),
        ("/api/v1/sessions", b"[1]", "must be a JSON object"),
        ("/api/v1/sessions", b'{"spec": {}, "owner": "o", "lease_seconds": 1}', "not a RunSpec"),
        ("/api/v1/sessions", b'{"spec": null, "extra": 1}', "unknown members extra"),
        ("/api/v1/sessions/append", b'{"run_id": "r"}', "not a Append in JSON"),
        ("/api/v1/sessions/rewind", b"{}", "'rewind' is not a session write"),
        (
            "/api/v1/sessions/heartbeat",
            b'{"run_id": "r", "owner": "o", "lease_seconds": -1}',
            "'lease_seconds' of a Heartbeat must be a number above 0 and at most 604800",
        ),
        (
            "/api/v1/sessions/heartbeat",
            b'{"run_id": "r", "owner": "o", "lease_seconds": 1e308}',
            "'lease_seconds' of a Heartbeat must be a number above 0 and at most 604800",
        ),
        (  # found by schemathesis: a usage count no database column holds was a 500
            "/api/v1/sessions/append",
            b'{"run_id": "r", "owner": "o", "lease_seconds": 1, "journal_seq": 1, '
            b'"event_seq": 1, "usage": {"tool_calls": 121952961862329994437459968}}',
            "usage 'tool_calls' must be from 0 to 2147483647",
        ),
        (
            "/api/v1/sessions/append",
            b'{"run_id": "r", "owner": "o", "lease_seconds": 1, "journal_seq": "x", '
            b'"event_seq": 1}',
            "'journal_seq' of a Append must be an integer from 1 to 2147483647",
        ),
        (
            "/api/v1/sessions/release",
            b'{"run_id": "", "owner": "o"}',
            "'run_id' of a Release must be a non-empty string",
        ),
        (  # past PostgreSQL's integer: refused before any database sees it
            "/api/v1/sessions/finish",
            b'{"run_id": "r", "owner": "o", "event_seq": 2147483648, "events": [], '
            b'"status": "failed"}',
            "'event_seq' of a Finish must be an integer from 1 to 2147483647",
        ),
        (
            "/api/v1/sessions/heartbeat",
            b'{"run_id": "r", "owner": "o\\u0000", "lease_seconds": 1}',
            "NUL character",
        ),
        (
            "/api/v1/sessions",
            b'{"spec": {"run_id": "r", "agent_name": "a", "input": 1, "input_fingerprint": '
            b'"f", "options": {}, "queue": {}}, "owner": "o", "lease_seconds": 1}',
            "RunSpec.queue must be str or null, got dict",
        ),
        ("/api/v1/runs", b'{"spec": {"run_id": 7}}', "not a RunSpec"),
        ("/api/v1/runs", b"{}", "missing spec"),
        (
            "/api/v1/claimable-runs",
            b'{"agent_refs": [], "agent_names": [1], "queue": "q", "limit": 1, "host": "h"}',
            "agent_names must be a list of strings",
        ),
        (
            "/api/v1/claimable-runs",
            b'{"agent_refs": [], "agent_names": [], "queue": "q", "limit": 0, "host": "h"}',
            "limit must be at least 1",
        ),
        (
            "/api/v1/tasks",
            b'{"spec": {"run_id": "r", "call_key": "k", "queue": "q", "tool_name": "t", '
            b'"call_id": "c", "arguments": "{}", "max_attempts": 0}}',
            "max_attempts must be at least 1",
        ),
        (
            "/api/v1/tasks",
            b'{"spec": {"run_id": "r", "call_key": "k", "queue": "q\\u0000", "tool_name": '
            b'"t", "call_id": "c", "arguments": "{}"}}',
            "NUL character",
        ),
        (
            "/api/v1/tasks/claim",
            b'{"queue": "q", "tools": ["t"], "owner": "", "lease_seconds": 1}',
            "owner must be a non-empty string",
        ),
        (
            "/api/v1/tasks/heartbeat",
            b'{"lease": {"task_id": "t", "owner": "o", "attempt": -1, "lease_seconds": 1}}',
            "lease.attempt must be an attempt's number",
        ),
        (
            "/api/v1/tasks/complete",
            b'{"lease": {"task_id": "t", "owner": "o", "attempt": 1, "lease_seconds": 1}, '
            b'"result": {"kind": "maybe"}}',
            "'maybe' is not a task outcome",
        ),
        (
            "/api/v1/tasks/fail",
            b'{"lease": {"task_id": "t", "owner": "o", "attempt": 1, "lease_seconds": 1}, '
            b'"error": 3}',
            "error must be a string",
        ),
    ],
)
def test_a_bad_write_request_is_a_400_saying_what_is_wrong(
    served: tuple[Server, str], path: str, body: bytes, says: str
) -> None:
    server, _ = served
    response = httpx.post(server.url + path, content=body, timeout=10)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert says in error["message"]
    assert error["code"] in ("bad_json", "bad_request", "unstorable_name")


def test_polling_for_a_stop_needs_the_run_id(served: tuple[Server, str]) -> None:
    server, _ = served
    response = httpx.get(server.url + "/api/v1/sessions/cancel", timeout=10)
    assert response.status_code == 400
    assert "?run_id=ID" in response.json()["error"]["message"]
    known = httpx.get(server.url + "/api/v1/sessions/cancel", params={"run_id": "x"}, timeout=10)
    assert known.json() == {"cancel_requested": None}


def test_open_engine_chooses_a_server_by_url_or_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RUNPLANE_DATABASE_URL", raising=False)
    monkeypatch.delenv("RUNPLANE_SERVER_URL", raising=False)
    assert isinstance(open_engine("http://127.0.0.1:1"), RemoteEngine)
    assert isinstance(open_engine("https://runs.example"), RemoteEngine)
    assert open_engine("http://127.0.0.1:1").describe() == "runplane server http://127.0.0.1:1"
    assert isinstance(open_engine(sqlite_url(tmp_path)), LocalEngine)
    monkeypatch.setenv("RUNPLANE_SERVER_URL", "http://127.0.0.1:2/")
    chosen = open_engine(read_only=True)
    assert isinstance(chosen, RemoteEngine)
    assert (chosen.url, chosen.read_only) == ("http://127.0.0.1:2", True)
    assert isinstance(open_engine(sqlite_url(tmp_path)), LocalEngine)  # a URL given wins
    assert isinstance(open_engine(server=False), LocalEngine)  # what `runplane server` opens
    with pytest.raises(ValueError, match="serves a database"):
        open_engine("http://127.0.0.1:1", server=False)
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", sqlite_url(tmp_path))
    with pytest.raises(
        DatabaseError, match=r"both RUNPLANE_SERVER_URL .* and RUNPLANE_DATABASE_URL"
    ):
        open_engine()
    with pytest.raises(ValueError, match="not a runplane server's URL"):
        RemoteEngine("ftp://x")
    for token in ("caf\u00e9", "two words", "tab\there"):  # a header cannot carry them
        with pytest.raises(ValueError, match="only printable ASCII without spaces"):
            RemoteEngine("http://127.0.0.1:1", token=token)
    monkeypatch.setenv("RUNPLANE_TOKEN", "s\u00e9cret")
    with pytest.raises(ValueError, match=r"RUNPLANE_TOKEN .* it has 'é'"):
        RemoteEngine("http://127.0.0.1:1")
    monkeypatch.delenv("RUNPLANE_TOKEN")
    monkeypatch.setenv("RUNPLANE_SERVER_RETRY_SECONDS", "soon")
    with pytest.raises(ValueError, match="RUNPLANE_SERVER_RETRY_SECONDS='soon'"):
        RemoteEngine("http://127.0.0.1:1")


def test_a_read_only_remote_engine_runs_nothing() -> None:
    async def go() -> None:
        engine = RemoteEngine("http://127.0.0.1:1", read_only=True)
        with pytest.raises(DatabaseError, match="read_only=True"):
            await engine.open_run(_spec(_rid()), lease_seconds=30)
        await engine.dispose()

    asyncio.run(go())


def test_a_write_crosses_the_wire_as_its_json_form() -> None:
    from runplane_durable.writes import Append, Finish, Heartbeat, Release, write_from_json

    writes = [
        Append(
            "r",
            "o",
            30.0,
            3,
            7,
            JournalEntry("tool", "k", None, {"x": [1]}),
            [NewEvent("e", {"a": 1})],
            UsageDelta(tool_calls=1),
        ),
        Append("r", "o", 30.0, 3, 7),
        Heartbeat("r", "o", 5.0),
        Finish("r", "o", 9, [NewEvent("attempt_ended", {})], "failed", None, "x.E", "boom"),
        Release("r", "o", NewEvent("attempt_ended", {"reason": "interrupted"})),
        Release("r", "o"),
    ]
    for write in writes:
        assert write_from_json(write.NAME, json.loads(json.dumps(write.to_json()))) == write
    with pytest.raises(ValueError, match="'paused' is not a run status"):
        write_from_json("finish", {**writes[3].to_json(), "status": "paused"})


def test_the_remote_tools_decorator_stays_the_packages_remote_once_an_engine_was_chosen() -> None:
    """`from runplane_durable import remote` is the remote tools' decorator, also in a process
    that chose a server's engine first (a submodule named `remote` would replace it in the
    package once imported: the engine's module is `remote_engine`)."""
    code = (
        "from runplane_durable.engine import open_engine\n"
        "open_engine('http://127.0.0.1:1')\n"
        "import runplane_durable.cli.where\n"
        "from runplane_durable import remote, RemoteEngine\n"
        "import inspect\n"
        "assert inspect.isfunction(remote), remote\n"
        "assert RemoteEngine.__module__ == 'runplane_durable.remote_engine'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("run_id", [".", "..", "a/..", "./b", "%2E", "100%"])
def test_run_ids_that_look_like_path_segments_name_their_run(
    served: tuple[Server, str], run_id: str
) -> None:
    """httpx drops `.` and `..` segments from a URL's path: percent-encoded as they are, the
    run `..` was asked for at /api/v1/events. Every reading of a run names the run itself."""
    server, _ = served
    engine = RemoteEngine(server.url)
    spec = RunSpec(run_id, "echo", {"text": "go"}, "fp-echo-go", {"mode": "run"})

    async def go() -> tuple[str, list[str], int]:
        try:
            session = await engine.open_run(spec, lease_seconds=30)
            await session.append(events=[NewEvent("progress", {})])
            await session.finish("completed", final_output={"json": 1})
            await session.close()
            record = await engine.get_run(run_id)
            events = await engine.list_events(run_id)
            journal = await engine.read_journal(run_id)
            return record.id, [e.run_id for e in events], len(journal)
        finally:
            await engine.dispose()

    found, event_runs, journal = asyncio.run(go())
    assert found == run_id
    assert set(event_runs) == {run_id}
    assert journal == 0
