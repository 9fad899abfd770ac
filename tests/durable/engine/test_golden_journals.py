"""Golden journals: runs recorded by an earlier runplane-durable, replayed by today's code.

Each file under golden/ holds a run's rows as its database stored them. It is written into a
fresh database with the schema of the version that recorded it, then replayed: a finished run
must return what it returned live without calling a model or a tool, and the unfinished one must
resume, calling the model only for the steps its journal lacks. A change that cannot read what
an earlier version wrote (the journal's value tags, a model response's stored form, the schema)
fails here, naming the file and what differed. See docs/development.md, "Golden journals".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from agents import Agent
from agents.testing import ScriptedModel, assistant_message
from runplane_durable import DurableBackend, LocalEngine, run_id
from runplane_durable.local import sql
from runplane_durable.local.database import Database, resolve_url
from runplane_durable.local.schema import SCHEMA_VERSION, metadata
from support.durable import fresh_pg_database, sqlite_url
from support.golden_files import (
    GOLDEN_DIR,
    clear_postgres,
    create_empty,
    current_ddl,
    golden_files,
    golden_path,
    load,
    load_golden,
    normalized,
    recorded_ddl,
    recorded_versions,
    table_rows,
)
from support.golden_programs import PROGRAMS, Program, ToolCalledOnReplay
from support.golden_replay import differences, replay_finished, resume_unfinished
from typer.testing import CliRunner

from runplane.cli import build_app

MAX_BYTES = 100_000
FILES = golden_files()


@pytest.fixture(scope="module")
def golden_pg() -> Iterator[str]:
    """This module's own PostgreSQL database: the `db_url` fixture's is shared by the session,
    so today's schema is already in it; one database per test would be a CREATE DATABASE each."""
    yield from fresh_pg_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing of runplane's in it, not even its tables."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("golden_pg")
    clear_postgres(url)
    return url


def _program(path: Path, golden: dict[str, Any]) -> Program:
    program = PROGRAMS.get(golden["program"])
    if program is None:
        pytest.fail(f"{path.name}: no program {golden['program']!r} in golden_programs.py")
    return program


async def _stored(url: str, run_ids: list[str]) -> dict[str, Any]:
    """What the database holds of these runs: row, journal length, events."""
    engine = LocalEngine(url)
    try:
        return {
            rid: (
                await engine.get_run(rid),
                len(await engine.read_journal(rid)),
                await engine.list_events(rid),
            )
            for rid in run_ids
        }
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _naming(path: Path, doing: str) -> Iterator[None]:
    """Fail with the golden file's name and what was being done when today's code raises."""
    try:
        yield
    except (Exception, ToolCalledOnReplay) as exc:
        failure = f"{path.name}: {doing} raised {type(exc).__name__}: {exc}"
    else:
        return
    pytest.fail(failure, pytrace=False)


def _check(path: Path, rid: str, recorded: Any, replayed: Any, ignore: tuple[str, ...]) -> None:
    differ = differences(recorded, replayed, ignore=ignore)
    if differ:
        pytest.fail(
            f"{path.name}: replaying run {rid!r} with today's code did not return what it "
            "returned when recorded:\n  " + "\n  ".join(differ),
            pytrace=False,
        )


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_journal_replays(path: Path, empty_db: str) -> None:
    golden = load_golden(path)
    program = _program(path, golden)
    load(empty_db, golden)
    runs = table_rows(golden, "runplane_runs")
    finished = [r["id"] for r in runs if r["status"] == "completed"]
    assert sorted(golden["expected"]) == sorted(finished), path.name
    with _naming(path, "reading the loaded runs"):
        before = asyncio.run(_stored(empty_db, finished))
    with _naming(path, "replaying its finished runs"):
        replayed = replay_finished(empty_db, program, golden)
    for rid, result in replayed.items():
        assert (result.model_calls, result.tool_calls) == (0, []), (
            f"{path.name}: replaying finished run {rid!r} called {result.model_calls} model(s) "
            f"and ran tools {result.tool_calls}"
        )
        ignore = program.differences_in(golden["schema_version"]) if rid == program.run_id else ()
        _check(path, rid, golden["expected"][rid], result.summary, ignore)
    # A finished run is only read: replaying it writes nothing, not even an attempt.
    assert asyncio.run(_stored(empty_db, finished)) == before, path.name
    if "resume" in golden:
        _check_resume(path, program, golden, empty_db)


def _check_resume(path: Path, program: Program, golden: dict[str, Any], url: str) -> None:
    recorded = golden["resume"]
    assert program.crash_at is not None
    with _naming(path, f"resuming run {recorded['run_id']!r}"):
        resumed = resume_unfinished(
            url,
            program,
            golden,
            allowed=frozenset({program.crash_at}),
            steps_done=recorded["model_steps_done"],
        )
    # Only the steps after the crash reach the model; only the tool in flight runs again.
    assert (resumed.model_calls, resumed.tool_calls) == (
        recorded["model_calls"],
        recorded["tool_calls"],
    ), path.name
    _check(path, recorded["run_id"], recorded["summary"], resumed.summary, ())
    ((record, journal, events),) = asyncio.run(_stored(url, [recorded["run_id"]])).values()
    assert record.status == "completed"
    # The journal gained exactly the live steps: the model calls and the tool run again.
    stored = len(table_rows(golden, "runplane_journal"))
    assert journal == stored + recorded["model_calls"] + len(recorded["tool_calls"])
    # The dead attempt is ended for it, then the resuming one starts, saying what it replays.
    recorded_events = len(table_rows(golden, "runplane_events"))
    new = [(e.type, e.payload) for e in events[recorded_events:]]
    ended, started = new[0], new[1]
    assert ended[0] == "attempt_ended"
    assert (ended[1]["attempt"], ended[1]["reason"]) in {(1, "killed"), (1, "lease_lost")}
    assert started[0] == "attempt_started"
    assert {k: started[1][k] for k in ("attempt", "resumed", "model_calls", "tool_outputs")} == {
        "attempt": 2,
        "resumed": True,
        "model_calls": recorded["model_steps_done"],
        "tool_outputs": 1,
    }
    assert new[-1][0] == "run_completed"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_history_reads_with_todays_cli(path: Path, tmp_path: Path) -> None:
    """`runplane runs show` reads the events an earlier version wrote: every step, in order,
    and each tool call on its own line, by name, with its output when that is text."""
    golden = load_golden(path)
    db = tmp_path / "runs.db"
    load(f"sqlite:///{db}", golden)
    events = table_rows(golden, "runplane_events")
    for row in table_rows(golden, "runplane_runs"):
        rid = row["id"]
        shown = CliRunner().invoke(build_app(), ["runs", "show", rid, "--json", "--db", str(db)])
        assert shown.exit_code == 0, f"{path.name}: runs show {rid} --json: {shown.output}"
        steps = [s["type"] for s in json.loads(shown.stdout)["steps"]]
        assert steps == [e["type"] for e in events if e["run_id"] == rid], path.name
        text = CliRunner().invoke(build_app(), ["runs", "show", rid, "--db", str(db)])
        assert text.exit_code == 0, f"{path.name}: runs show {rid}: {text.output}"
        lines = {int(m[1]): m[2] for m in re.finditer(r"^ *(\d+) \S+ (.*)$", text.stdout, re.M)}
        for event in events:
            if event["run_id"] != rid or event["type"] != "tool_call":
                continue
            tool = json.loads(event["payload"])
            line = lines.get(event["seq"], "")
            assert line.startswith(f"tool {tool['name']}("), f"{path.name}: {rid}: {line!r}"
            output = tool.get("output")
            text_output = output.get("json") if isinstance(output, dict) else None
            if "error" not in tool and isinstance(text_output, str):
                assert f"-> {text_output[:10]}" in line, f"{path.name}: {line!r}"


KNOWN = [
    p
    for p in FILES
    if (program := PROGRAMS.get((golden := load_golden(p))["program"])) is not None
    and program.differences_in(golden["schema_version"])
]


@pytest.mark.xfail(strict=True, reason="known replay bugs; see known_differences")
@pytest.mark.parametrize("path", KNOWN, ids=[p.stem for p in KNOWN])
def test_known_differences_are_still_there(path: Path, tmp_path: Path) -> None:
    """Fails (XPASS, strict) once a known bug is fixed: then drop its `known_differences`."""
    golden = load_golden(path)
    program = _program(path, golden)
    url = sqlite_url(tmp_path)
    load(url, golden)
    replayed = replay_finished(url, program, golden)[program.run_id]
    _check(path, program.run_id, golden["expected"][program.run_id], replayed.summary, ())


def test_every_program_has_a_small_golden_file_of_this_schema_version() -> None:
    missing = [n for n in PROGRAMS if not golden_path(n, SCHEMA_VERSION).is_file()]
    assert not missing, (
        f"no golden file of schema version {SCHEMA_VERSION} for {missing}; record them with "
        "`python tests/support/golden_record.py` (docs/development.md, Golden journals)"
    )
    for path in FILES:
        golden = load_golden(path)
        assert golden["program"] in PROGRAMS, f"{path.name}: no such program"
        assert path.name == golden_path(golden["program"], golden["schema_version"]).name
        assert golden["schema_version"] in recorded_versions(), path.name
        assert path.stat().st_size < MAX_BYTES, f"{path.name} is over {MAX_BYTES} bytes"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_schema_is_recorded_for_its_version(dialect: str) -> None:
    """local/schema.py as it is today is the schema recorded for SCHEMA_VERSION: a change to it
    comes with a new version, a migration and the new version's DDL."""
    assert normalized(current_ddl(dialect)) == normalized(recorded_ddl(SCHEMA_VERSION, dialect)), (
        f"local/schema.py differs from {GOLDEN_DIR.name}/schema/v{SCHEMA_VERSION}.{dialect}.sql: "
        "bump SCHEMA_VERSION, add the migration from the previous version and record the new "
        "version's DDL (docs/development.md, Golden journals)"
    )


def _columns(conn: sa.Connection) -> dict[str, list[str]]:
    inspector = sa.inspect(conn)
    return {t: [c["name"] for c in inspector.get_columns(t)] for t in metadata.tables}


@pytest.mark.parametrize("version", recorded_versions())
def test_a_database_of_every_recorded_schema_version_opens(version: int, empty_db: str) -> None:
    """A database made by any earlier version ends at today's version with today's tables, and
    runs on it; an upgrade without its migration leaves the old version or a column missing."""
    create_empty(empty_db, version)

    async def go() -> tuple[int | None, dict[str, list[str]]]:
        database = Database(resolve_url(empty_db))
        try:
            tx = await database.transactions()
            try:
                return await tx.call(sql.schema_version), await tx.call(_columns)
            finally:
                await tx.close()
        finally:
            await database.dispose()

    found, columns = asyncio.run(go())
    assert found == SCHEMA_VERSION, (
        f"a database of schema version {version}, opened by today's code, is still at version "
        f"{found}, not {SCHEMA_VERSION}: add the migration to local/sql.py create_schema"
    )
    expected = {t: [c.name for c in table.columns] for t, table in metadata.tables.items()}
    assert columns == expected, (
        f"schema version {version}, upgraded: {differences(expected, columns)}"
    )

    async def run() -> Any:
        backend = DurableBackend(LocalEngine(empty_db))
        agent = Agent(name="after", model=ScriptedModel([[assistant_message("fine")]]))
        try:
            with run_id("after-upgrade"):
                return (await backend.run(agent, "hi")).final_output
        finally:
            await backend.engine.dispose()

    assert asyncio.run(run()) == "fine"
