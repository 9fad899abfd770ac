"""A step that PostgreSQL committed, whose answer the link lost (the connection cut right after
the commit): the engine cannot know whether it committed, looks it up by its lease holder and
seqs (`sql.committed`, as a server does for a client's retried write), and never writes it
twice; the run goes on. A proxy between the engine and the server cuts the answer."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DatabaseError, DurableBackend, LocalEngine, run_id
from runplane_durable.local import sql
from sqlalchemy.engine import make_url
from support.cutting_proxy import CuttingProxy
from support.durable import run_async

MARK = "LOSE-THIS-ANSWER"


@pytest.mark.parametrize(
    ("where", "occurrence", "tool_output", "answer"),
    [
        ("a tool output's step", 1, MARK, "done"),  # queued (wait=False)
        ("a model response's step", 1, "plain", MARK),  # the model_call append
        ("the outcome", 2, "plain", MARK),  # the final output again: the finish
    ],
)
def test_a_step_whose_commit_answer_was_lost_is_written_once(
    pg_url: str, where: str, occurrence: int, tool_output: str, answer: str
) -> None:
    calls: list[int] = []

    @function_tool
    def look(n: int) -> str:
        calls.append(n)
        return tool_output

    script = [[function_call("look", {"n": 1}, call_id="c1")], [assistant_message(answer)]]
    agent = Agent(name="lost", tools=[look], model=ScriptedModel(script))
    parsed = make_url(pg_url)
    rid = f"lost-{occurrence}-{len(tool_output)}-{len(answer)}"

    async def go() -> tuple[Any, ...]:
        proxy = CuttingProxy(parsed.port or 5432, MARK.encode(), occurrence=occurrence)
        await proxy.start()
        engine = LocalEngine(parsed.set(port=proxy.port).render_as_string(hide_password=False))
        try:
            with run_id(rid):
                result = await DurableBackend(engine).run(agent, "x")
            run = await engine.get_run(rid)
            journal = await engine.read_journal(rid)
            events = await engine.list_events(rid)
        finally:
            await engine.dispose()
            await proxy.close()
        return proxy.cut, result.final_output, run, journal, events

    cut, output, run, journal, events = run_async(go())
    assert cut == 1, f"the proxy never cut {where}'s answer"
    assert output == answer
    assert calls == [1]
    assert (run.status, run.owner, run.model_calls, run.tool_calls) == ("completed", None, 2, 1)
    assert [(r.kind, r.key, r.seq) for r in journal] == [
        ("model", "0", 1),
        ("tool", "1:c1", 2),
        ("model", "1", 3),
    ]
    assert [e.type for e in events] == [
        "attempt_started",
        "model_call",
        "tool_call",
        "model_call",
        "attempt_ended",
        "run_completed",
    ]
    assert [e.seq for e in events] == list(range(1, 7))


def test_a_connection_cut_while_it_is_made_is_retried_then_reported(tmp_path: Any) -> None:
    """A listener that hangs up in the middle of each handshake (a server dying as it accepts): the
    driver's own error, which SQLAlchemy lets through unwrapped from a pool checkout, is a link
    failure like a refused connection: tried again within the bound, then a DatabaseError that
    says what to do (it was an HTTP 500 behind a server)."""

    async def go() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            """Past SSL negotiation and authentication, then gone: asyncpg's
            ConnectionDoesNotExistError, from inside the handshake."""
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await reader.readexactly(8)  # SSLRequest: refused, go on in the clear
                writer.write(b"N")
                await reader.read(65536)  # the startup message
                writer.write(b"R" + struct.pack("!ii", 8, 0))  # AuthenticationOk
                await writer.drain()
            writer.transport.abort()

        listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        engine = LocalEngine(f"postgresql://postgres@127.0.0.1:{port}/x", retry_seconds=0.5)
        try:
            with pytest.raises(DatabaseError) as info:  # a step: it checks out a raw connection
                await engine.database._transactions().call(sql.heartbeat, "r", "nobody", 30.0)
        finally:
            await engine.dispose()
            listener.close()
        message = str(info.value)
        assert "cannot reach the database" in message
        assert "RUNPLANE_DATABASE_RETRY_SECONDS" in message
        tries = int(message.split("tried ")[1].split(" ")[0])
        assert tries > 1

    run_async(go())


@pytest.mark.parametrize("settle", ["complete", "fail"])
def test_a_task_settle_whose_commit_answer_was_lost_is_recognised_not_refused(
    pg_url: str, settle: str
) -> None:
    """A worker's result (or failure) that PostgreSQL committed, its answer lost with the link:
    made again, the fence refuses it (the attempt no longer holds the task), and the engine
    recognises the stored task as its own write, settled by that attempt with that result: the
    worker gets the task, not TaskLeaseLostError, and the task is settled once."""
    from runplane_durable.records import TaskResult, TaskSpec

    parsed = make_url(pg_url)
    tag = uuid.uuid4().hex[:8]  # the PostgreSQL database is the session's

    async def go() -> tuple[Any, Any, int]:
        proxy = CuttingProxy(parsed.port or 5432, MARK.encode())
        await proxy.start()
        engine = LocalEngine(parsed.set(port=proxy.port).render_as_string(hide_password=False))
        plain = LocalEngine(pg_url)
        try:
            queue = f"q-{settle}-{tag}"
            spec = TaskSpec(f"run-{queue}", "0:c1", queue, "look", "c1", "{}")
            await plain.enqueue_task(spec)
            claimed = await plain.claim_task(
                queue=queue, tools=["look"], owner="w1", lease_seconds=30
            )
            assert claimed is not None
            lease = claimed.held(30)
            if settle == "complete":
                result = TaskResult("ok", output={"json": MARK})
                task = await engine.complete_task(lease, result)
                assert task.result == result
            else:
                task = await engine.fail_task(lease, f"worker said {MARK}")
                assert task.error == f"attempt 1: worker said {MARK}"
            stored = await plain.get_task(claimed.id)
        finally:
            await engine.dispose()
            await plain.dispose()
            await proxy.close()
        return task, stored, proxy.cut

    task, stored, cut = run_async(go())
    assert cut == 1, "the proxy never cut the settle's answer"
    assert task == stored
    assert stored.attempts == 1
    assert stored.status == ("completed" if settle == "complete" else "pending")


def test_a_cancel_whose_link_died_mid_statement_is_asked_once(pg_url: str) -> None:
    """A cancel request whose link to PostgreSQL died mid-statement (it may or may not have
    committed) is not an error for whoever asked: the run is read again, and the request made
    again only if it is not there; the run's history holds it once."""
    from runplane_durable.events import CancelRequested, parse
    from runplane_durable.records import Requester, RunSpec

    parsed = make_url(pg_url)
    rid = f"cancel-lost-{uuid.uuid4().hex[:8]}"

    async def go() -> tuple[Any, list[Any], int]:
        proxy = CuttingProxy(parsed.port or 5432, MARK.encode())
        await proxy.start()
        engine = LocalEngine(parsed.set(port=proxy.port).render_as_string(hide_password=False))
        plain = LocalEngine(pg_url)
        try:
            held = await plain.open_run(RunSpec(rid, "echo", {}, "fp", {}), lease_seconds=60)
            record = await engine.cancel_run(rid, by=Requester(MARK, 7, "ann"))
            found = [parse(e) for e in await plain.list_events(rid)]
            await held.close()
        finally:
            await engine.dispose()
            await plain.dispose()
            await proxy.close()
        return record, found, proxy.cut

    record, found, cut = run_async(go())
    assert cut == 1, "the proxy never cut the cancel's statement"
    assert record.cancel_requested == "immediate"
    asked = [e for e in found if isinstance(e, CancelRequested)]
    assert [(e.host, e.pid, e.user) for e in asked] == [(MARK, 7, "ann")]
