"""A run given `session=` and a durable conversation, killed with kill -9 mid-run and resumed by
a fresh process: no recorded model call and no completed tool runs again, nothing is added to
the session twice, and the session ends as an uncrashed run leaves it.

Before session steps were journaled, the resumed run read back the turn its crashed attempt had
already saved, asked the model something the journal never recorded, and diverged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.durable import fresh_pg_database
from support.durable_programs import CrashProgram, final_output

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).parents[2] / "support" / "session_crash_program.py"
FIRST, SECOND, THIRD = "first question", "second question", "third question"


def _program(
    tmp_path: Path, name: str, *, served: bool = False, database: str | None = None
) -> CrashProgram:
    """The program in its own directory; `database`: behind a server on that database."""
    workdir = tmp_path / name
    workdir.mkdir()
    program = CrashProgram(workdir, served=served and database is None, source=SOURCE)
    if database is not None:
        program.serve(database)
    return program


def _database(program: CrashProgram, database: str | None) -> str:
    return database or f"sqlite:///{program.db}"


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[list[CrashProgram]]:
    made: list[CrashProgram] = []
    yield made
    for program in made:
        program.cleanup()


def _sqlite_items(program: CrashProgram) -> list[Any]:
    """The SDK's SQLiteSession's items, read from its file as the SDK stored them."""
    with sqlite3.connect(program.workdir / "session.db") as conn:
        rows = conn.execute(
            "SELECT message_data FROM agent_messages WHERE session_id = 'conversation' ORDER BY id"
        ).fetchall()
    import json

    return [json.loads(r[0]) for r in rows]


@pytest.mark.parametrize("mode", ["run", "run_streamed"])
def test_a_run_with_a_session_resumes_after_kill_9_as_if_it_never_crashed(
    tmp_path: Path, programs: list[CrashProgram], mode: str
) -> None:
    reference = _program(tmp_path, "reference")
    crashed = _program(tmp_path, "crashed")
    programs += [reference, crashed]
    for program in (reference, crashed):  # an earlier run left a turn in the session
        assert final_output(program.run(mode, "earlier", FIRST)) == "turn 1: TOOL_A-1, TOOL_B-1"
    assert final_output(reference.run(mode, "later", SECOND)) == "turn 2: TOOL_A-2, TOOL_B-2"

    # Killed in tool_b: the input and model calls 2.0 and 2.1 are journaled, tool_a completed,
    # and the session already holds the new prompt and turn 2's first items.
    proc = crashed.start(mode, "later", SECOND, block="tool_b:mid")
    assert crashed.wait_started(proc) == "tool_b:mid"
    crashed.kill9(proc)
    assert len(_sqlite_items(crashed)) > len(_sqlite_items(reference)) - 5  # it had saved some

    done = crashed.run(mode, "later", SECOND)
    assert final_output(done) == "turn 2: TOOL_A-2, TOOL_B-2"
    # No recorded model call asked again, no completed tool run again (tool_b was in flight).
    steps = [c.split()[0] for c in crashed.lines("model.log")]
    assert steps == ["1.0", "1.1", "1.2", "2.0", "2.1", "2.2"]
    assert crashed.tool_calls() == [
        "tool_a call-a-1",
        "tool_b call-b-1",
        "tool_a call-a-2",
        "tool_b call-b-2",
        "tool_b call-b-2",
    ]
    assert _sqlite_items(crashed) == _sqlite_items(reference)
    # The finished run replays from its journal alone and leaves the session as it is.
    assert final_output(crashed.run(mode, "later", SECOND)) == "turn 2: TOOL_A-2, TOOL_B-2"
    assert _sqlite_items(crashed) == _sqlite_items(reference)
    assert len(crashed.lines("model.log")) == 6


def _durable_items(database: str, conversation: str) -> list[Any]:
    from runplane_durable import DurableSession, LocalEngine

    async def read() -> list[Any]:
        engine = LocalEngine(database)
        try:
            return list(await DurableSession(conversation, engine=engine).get_items())
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.fixture
def pg_databases(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Two fresh PostgreSQL databases when the test asks for them (the reference run's and the
    crashed one's), else none."""
    if "postgresql" not in request.node.name:
        yield []
        return
    made = [fresh_pg_database(), fresh_pg_database()]
    try:
        yield [next(m) for m in made]
    finally:
        for m in made:
            next(m, None)  # drops it


@pytest.mark.parametrize("transport", ["embedded", "server", "server-postgresql"])
def test_a_host_killed_mid_turn_resumes_the_conversation_and_that_turn(
    tmp_path: Path, programs: list[CrashProgram], transport: str, pg_databases: list[str]
) -> None:
    served = transport != "embedded"
    databases: list[str | None] = [*pg_databases] or [None, None]
    reference = _program(tmp_path, "reference", served=served, database=databases[0])
    crashed = _program(tmp_path, "crashed", served=served, database=databases[1])
    programs += [reference, crashed]
    prompts = (FIRST, SECOND, THIRD)
    expected = [f"turn {n}: TOOL_A-{n}, TOOL_B-{n}" for n in (1, 2, 3)]
    assert final_output(reference.run("host", "chat-7", *prompts)) == expected

    # The host dies in turn 2's tool_a, after turn 1 finished and turn 2's first model call.
    proc = crashed.start(
        "host", "chat-7", *prompts, block="tool_a:mid", env={"CRASH_PROMPT": SECOND}
    )
    assert crashed.wait_started(proc) == "tool_a:mid"
    crashed.kill9(proc)
    assert crashed.lines("host.log")[0].split()[0] == "0"

    assert final_output(crashed.run("host", "chat-7", *prompts)) == expected
    steps = [c.split()[0] for c in crashed.lines("model.log")]
    assert steps == ["1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "3.0", "3.1", "3.2"]
    assert crashed.tool_calls() == [
        "tool_a call-a-1",
        "tool_b call-b-1",
        "tool_a call-a-2",  # in flight at the kill: runs again
        "tool_a call-a-2",
        "tool_b call-b-2",
        "tool_a call-a-3",
        "tool_b call-b-3",
    ]
    expected_items = _durable_items(_database(reference, databases[0]), "chat-7")
    assert _durable_items(_database(crashed, databases[1]), "chat-7") == expected_items
    assert len(expected_items) == 3 * 6  # prompt, 2 calls, 2 outputs, answer


@pytest.mark.parametrize("transport", ["embedded", "server"])
def test_a_host_context_killed_mid_turn_resumes_that_turn_when_started_again(
    tmp_path: Path, programs: list[CrashProgram], transport: str
) -> None:
    """The same on `runplane.host.HostContext`: a host started again after kill -9 finds the
    turn cut off (`ctx.unfinished_turn`), finishes it with `ctx.resume()` (its recorded model
    calls and completed tools not repeated) and goes on with the turns after it."""
    served = transport == "server"
    reference = _program(tmp_path, "reference", served=served)
    crashed = _program(tmp_path, "crashed", served=served)
    programs += [reference, crashed]
    prompts = (FIRST, SECOND, THIRD)
    expected = [f"turn {n}: TOOL_A-{n}, TOOL_B-{n}" for n in (1, 2, 3)]
    assert final_output(reference.run("hostctx", "chat-9", *prompts)) == expected

    proc = crashed.start(
        "hostctx", "chat-9", *prompts, block="tool_a:mid", env={"CRASH_PROMPT": SECOND}
    )
    assert crashed.wait_started(proc) == "tool_a:mid"
    crashed.kill9(proc)
    assert [line.split()[0] for line in crashed.lines("host.log")] == ["0"]

    assert final_output(crashed.run("hostctx", "chat-9", *prompts)) == expected[1:]
    assert [line.split()[::2] for line in crashed.lines("host.log")][1:] == [
        ["1", "resumed"],
        ["2"],
    ]
    steps = [c.split()[0] for c in crashed.lines("model.log")]
    assert steps == ["1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "3.0", "3.1", "3.2"]
    assert crashed.tool_calls() == [
        "tool_a call-a-1",
        "tool_b call-b-1",
        "tool_a call-a-2",  # in flight at the kill: runs again
        "tool_a call-a-2",
        "tool_b call-b-2",
        "tool_a call-a-3",
        "tool_b call-b-3",
    ]
    expected_items = _durable_items(_database(reference, None), "chat-9")
    assert _durable_items(_database(crashed, None), "chat-9") == expected_items
    assert len(expected_items) == 3 * 6
