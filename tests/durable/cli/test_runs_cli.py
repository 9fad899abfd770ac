"""`runplane runs list|show`: states, where the database is found, read-only, history, width.

Runs are made three ways: real programs killed with SIGKILL or stopped with SIGINT
(`crash_program.py`), and runs written through `LocalEngine` sessions with the events a
runtime writes (attempts, latencies, tool errors), so that each rendering rule is tested on
exactly the record it reads.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runplane_durable import DatabaseError, LocalEngine, RunNotFoundError
from runplane_durable.cli.runs import short_ids
from runplane_durable.local.location import locate
from runplane_durable.records import NewEvent, RunRecord, RunSpec
from runplane_durable.states import run_state, tools_in_flight
from support.durable import run_async
from support.durable_programs import TIMEOUT, CrashProgram, final_output
from typer.testing import CliRunner

from runplane.cli import build_app

FINAL = "done: TOOL_A-0, TOOL_B-1, TOOL_C-2"


def cli(*args: str, cwd: Path | None = None, columns: int | None = None) -> Any:
    """The real `runplane` app in this process (a pipe, not a TTY), from `cwd`."""
    env = {"COLUMNS": str(columns)} if columns else {}
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner(env=env).invoke(build_app(), list(args))
    finally:
        os.chdir(old)


def cli_json(*args: str, cwd: Path | None = None) -> Any:
    result = cli(*args, "--json", cwd=cwd)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root`, each file with its size and modification time.

    Left out: a directory's own time, and the time of SQLite's `-shm` file. The `-shm` file is
    the WAL's shared-memory index, where every reader of a WAL database takes its read lock
    (so its time moves); when a reader is the only one, SQLite creates it beside the database
    and removes it again when the reader closes, which moves the directory's time.
    """
    return {
        str(p.relative_to(root)): (0, 0)
        if p.is_dir()
        else (p.stat().st_size, 0 if p.name.endswith("-shm") else p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def no_env_db(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RUNPLANE_DATABASE_URL: the database is looked for from the working directory."""
    monkeypatch.delenv("RUNPLANE_DATABASE_URL", raising=False)


@pytest.fixture
def program(tmp_path: Path) -> Iterator[CrashProgram]:
    prog = CrashProgram(tmp_path)
    try:
        yield prog
    finally:
        prog.cleanup()


# -- runs written through the engine, as a runtime writes them -------------------------------------


def _spec(run_id: str, agent: str = "writer") -> RunSpec:
    return RunSpec(run_id, agent, {"text": "go"}, f"fp-{run_id}", {"mode": "run"})


def model_call(ordinal: int, *calls: tuple[str, str], seconds: float | None = None) -> NewEvent:
    payload: dict[str, Any] = {
        "ordinal": ordinal,
        "agent": "writer",
        "usage": {"input_tokens": 812, "output_tokens": 40},
        "calls": [
            {"type": "tool", "name": name, "call_id": cid, "arguments": "{}"} for name, cid in calls
        ],
    }
    if seconds is not None:
        payload["seconds"] = seconds
    return NewEvent("model_call", payload)


def tool_call(ordinal: int, name: str, cid: str, **extra: Any) -> NewEvent:
    from runplane_durable.names import tool_key

    payload = {
        "name": name,
        "call_id": cid,
        "key": tool_key(ordinal + 1, cid),
        "seconds": 0.25,
        "arguments": "{}",
        "output": {"json": "ok"},
        "sdk_error": False,
        **extra,
    }
    return NewEvent("tool_call", payload)


def write_run(
    url: str, run_id: str, events: list[NewEvent], *, end: str | None, agent: str = "writer"
) -> None:
    """A run with `events`, then ended: `end` a status to finish with, "release" (stopped), or
    None (the session is closed without an outcome: its lease is given back too)."""

    async def go() -> None:
        engine = LocalEngine(url)
        try:
            session = await engine.open_run(_spec(run_id, agent), lease_seconds=30)
            try:
                if events:
                    await session.append(events=events)
                if end == "release":
                    await session.release()
                elif end == "failed":
                    await session.finish("failed", error=ConnectionError("upstream 503"))
                elif end is not None:
                    await session.finish(end, final_output={"json": "fine"})
            finally:
                await session.close()
        finally:
            await engine.dispose()

    run_async(go())


# -- item 3: live, orphaned and stopped runs -------------------------------------------------------


@pytest.mark.slow
def test_a_killed_run_is_orphaned_and_a_live_one_running(program: CrashProgram) -> None:
    proc = program.start("run", "kill-1", block="tool_b:mid")
    program.wait_started(proc)
    live = cli_json("runs", "show", "kill-1", "--db", str(program.db))
    assert (live["run"]["status"], live["run"]["state"]) == ("running", "running")
    assert f"pid {proc.pid}" in live["run"]["state_detail"]
    assert [f["call_id"] for f in live["in_flight"]] == ["call-b"]

    program.kill9(proc)
    left = snapshot(program.db.parent)
    assert f"{program.db.name}-wal" in left  # what the killed process left, kept as it is
    listed = cli_json("runs", "list", "--db", str(program.db))
    assert [(r["id"], r["status"], r["state"]) for r in listed] == [
        ("kill-1", "running", "orphaned")
    ]
    shown = cli("runs", "show", "kill-1", "--db", str(program.db), columns=200)
    assert shown.exit_code == 0, shown.output
    assert "state orphaned (stored status running)" in shown.stdout
    assert f"orphaned: its process ({socket.gethostname()} pid {proc.pid}) is gone" in shown.stdout
    assert "running in" not in shown.stdout
    assert shown.stdout.count("in flight when the run stopped") == 1  # tool_b, not tool_a
    assert cli_json("runs", "list", "--state", "orphaned", "--db", str(program.db))[0]["id"] == (
        "kill-1"
    )
    assert cli_json("runs", "list", "--state", "running", "--db", str(program.db)) == []
    assert snapshot(program.db.parent) == left  # reading folded nothing into the database

    assert final_output(program.run("run", "kill-1")) == FINAL
    done = cli_json("runs", "show", "kill-1", "--db", str(program.db))
    assert (done["run"]["state"], done["in_flight"]) == ("completed", [])


@pytest.mark.slow
def test_a_run_stopped_with_ctrl_c_is_stopped_and_resumable(program: CrashProgram) -> None:
    proc = program.start("run", "ctrl-c", block="tool_b:mid")
    program.wait_started(proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=TIMEOUT)
    shown = cli("runs", "show", "ctrl-c", "--db", str(program.db), columns=200)
    assert shown.exit_code == 0, shown.output
    assert "state stopped (stored status running)" in shown.stdout
    assert "stopped: interrupted, no process holds it" in shown.stdout
    run = cli_json("runs", "show", "ctrl-c", "--db", str(program.db))["run"]
    assert (run["status"], run["state"], run["owner"]) == ("running", "stopped", None)
    assert final_output(program.run("run", "ctrl-c")) == FINAL


def _record(owner: str | None, expires: float | None, status: str = "running") -> RunRecord:
    stored: Any = status
    return RunRecord(
        "r", "a", stored, {}, {}, 0.0, 0.0, None, owner, expires, 0, 0, 0, 0, 0, 0, None, None, None
    )


def test_states_judge_a_holder_on_another_host_by_its_lease_alone() -> None:
    now = 1000.0
    other = "elsewhere:4242:abc:1"
    assert run_state(_record(other, now + 5), now=now).state == "running"
    expired = run_state(_record(other, now - 300), now=now)
    assert expired.state == "orphaned"
    assert "elsewhere pid 4242 on another host) expired 5 min ago" in expired.why
    assert run_state(_record(None, None), now=now).state == "stopped"
    for status in ("awaiting_approval", "completed", "failed", "cancelled"):
        assert run_state(_record(None, None, status), now=now).state == status


def test_a_holder_on_this_host_whose_pid_is_gone_is_orphaned_before_its_lease_expires() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process
    owner = f"{socket.gethostname()}:{gone.pid}:tok:1"
    state = run_state(_record(owner, time.time() + 30))
    assert state.state == "orphaned"
    assert f"pid {gone.pid}) is gone" in state.why


# -- item 6: history that explains itself ----------------------------------------------------------


def test_show_explains_attempts_latencies_tool_errors_and_failures(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    killed_at, detected_at = 1_700_000_000.5, 1_700_000_012.234
    # The engine writes attempt 1's start (this process) and attempt 2's end (the failure);
    # attempt 1's death, as a later attempt records it, and attempt 2's start are written here.
    events = [
        model_call(0, ("charge", "c1"), seconds=1.2345),
        NewEvent(
            "attempt_ended",
            {
                "attempt": 1,
                "host": "vm",
                "pid": 100,
                "reason": "killed",
                "ended_at": killed_at,
                "detected_at": detected_at,
            },
        ),
        NewEvent(
            "attempt_started",
            {
                "attempt": 2,
                "host": "vm",
                "pid": 123,
                "resumed": True,
                "model_calls": 3,
                "tool_outputs": 2,
            },
        ),
        tool_call(
            0,
            "charge",
            "c1",
            output={"json": "An error occurred while running the tool. Please try again."},
            sdk_error=True,
            error={"type": "ConnectionError", "message": "upstream 503"},
        ),
    ]
    write_run(url, "explained", events, end="failed")
    result = cli("runs", "show", "explained", "--db", url, columns=200)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"attempt 1 started on {socket.gethostname()} pid {os.getpid()} (new run)" in out
    assert "model call #1 agent writer (812 in, 40 out, 1.234 s)" in out
    assert "attempt 1 on vm pid 100 ended: killed (last sign of life " in out
    assert time.strftime("%H:%M:%S", time.localtime(detected_at)) + ".234)" in out
    assert (
        "attempt 2 started on vm pid 123 (resumed: 3 model calls, 2 tool outputs from the journal)"
        in out
    )
    assert "tool charge({}) raised ConnectionError: upstream 503  0.250 s" in out
    assert "the model was shown: An error occurred while running the tool." in out
    assert "failed ConnectionError: upstream 503" in out  # the run_failed event, with its message
    assert "in flight" not in out  # the tool raised, and the run failed: nothing in flight
    # every event's time to the millisecond, under the date it happened on
    lines = out.splitlines()
    events = [line for line in lines if line[:4].strip().isdigit()]
    assert len(events) == 7
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", line.split()[1]) for line in events)
    day = lines.index(events[0]) - 1
    assert re.fullmatch(r"\s+\d{4}-\d\d-\d\d", lines[day])
    data = cli_json("runs", "show", "explained", "--db", url)
    assert data["steps"][0]["time"].endswith("+00:00")
    assert data["steps"][0]["time"][19] == "."
    assert data["steps"][4]["payload"]["error"]["message"] == "upstream 503"
    assert data["run"]["state"] == "failed"


@pytest.mark.parametrize(
    ("case", "end", "flying"),
    [
        ("asked, no output, stopped", "release", ["c2"]),
        ("asked, no output, completed", "completed", []),
        ("asked, no output, cancelled", "cancelled", []),
        ("awaiting approval names its call", "awaiting_approval", []),
    ],
)
def test_in_flight_only_for_a_tool_that_really_was(
    tmp_path: Path, case: str, end: str, flying: list[str]
) -> None:
    url = str(tmp_path / "runs.db")
    events = [model_call(0, ("a", "c1"), ("b", "c2")), tool_call(0, "a", "c1")]
    if end == "awaiting_approval":
        from runplane_durable.names import tool_key

        events.append(
            NewEvent(
                "run_awaiting_approval",
                {"calls": [{"call_id": "c2", "name": "b", "key": tool_key(1, "c2")}]},
            )
        )
        write_run(url, "r", events, end="release")
        # an awaiting-approval outcome, as the runtime records it after that event
        with sqlite3.connect(url) as conn:
            conn.execute("UPDATE runplane_runs SET status = 'awaiting_approval'")
    else:
        write_run(url, "r", events, end=end)
    data = cli_json("runs", "show", "r", "--db", url)
    assert [f["call_id"] for f in data["in_flight"]] == flying, case
    out = cli("runs", "show", "r", "--db", url, columns=200).stdout
    assert out.count("in flight when the run stopped") == len(flying), case


def test_an_older_awaiting_approval_run_has_nothing_in_flight() -> None:
    from runplane_durable.records import EventRecord

    events = [
        EventRecord("r", 1, "model_call", model_call(0, ("b", "c2")).payload, 0.0),
        EventRecord("r", 2, "run_awaiting_approval", {}, 0.0),
    ]
    assert tools_in_flight("awaiting_approval", events) == []
    assert [f.call_id for f in tools_in_flight("running", events)] == ["c2"]


def test_an_event_of_an_unknown_type_or_shape_is_shown_as_stored(tmp_path: Path) -> None:
    """A newer version's event, and one whose payload does not fit its type, each get their
    line (the second saying what does not fit); the rest of the history still reads."""
    url = str(tmp_path / "runs.db")
    odd = NewEvent("model_call", {"agent": "writer"})  # no ordinal
    events = [NewEvent("tool_started", {"key": "1:c1"}), odd, tool_call(0, "a", "c1")]
    write_run(url, "odd", events, end="completed")
    result = cli("runs", "show", "odd", "--db", url, columns=200)
    assert result.exit_code == 0, result.output
    assert 'tool_started {"key": "1:c1"}' in result.stdout
    assert 'model_call {"agent": "writer"} (not a model_call event: it has no \'ordinal\')' in (
        result.stdout
    )
    assert "tool a({}) -> ok" in result.stdout
    steps = cli_json("runs", "show", "odd", "--db", url)["steps"]
    assert [s["payload"] for s in steps[1:3]] == [{"key": "1:c1"}, {"agent": "writer"}]


# -- item 5: the database is found from any directory below it -------------------------------------


@pytest.mark.slow
def test_a_run_killed_in_a_directory_resumes_from_its_subdirectory(
    program: CrashProgram, no_env_db: None
) -> None:
    proc = program.start("run", "moved", block="tool_b:mid")
    program.wait_started(proc)
    program.kill9(proc)
    sub = program.workdir / "src" / "deeper"
    sub.mkdir(parents=True)
    resumed = subprocess.run(
        [sys.executable, str(program.script), "run", "moved"],
        cwd=sub,
        env=program._env(None),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert final_output(resumed) == FINAL
    # Resumed, not started again: only the model calls after the kill ran, from `sub`.
    assert [line.split()[0] for line in (sub / "model.log").read_text().splitlines()] == ["2", "3"]
    assert not (sub / ".runplane").exists()
    assert not (program.workdir / "src" / ".runplane").exists()
    listed = cli_json("runs", "list", cwd=sub)
    assert [(r["id"], r["state"]) for r in listed] == [("moved", "completed")]


def test_a_nested_directory_finds_the_database_above_it(tmp_path: Path, no_env_db: None) -> None:
    write_run(str(tmp_path / ".runplane" / "runplane.db"), "above", [], end="completed")
    nested = tmp_path / "a" / "b" / "c"
    nested.mkdir(parents=True)
    before = snapshot(tmp_path)
    where = locate(start=nested)
    assert (where.source, where.url) == ("found", f"sqlite:///{tmp_path}/.runplane/runplane.db")
    result = cli("runs", "list", cwd=nested, columns=200)
    assert result.exit_code == 0, result.output
    assert f"1 run in the SQLite database {tmp_path}/.runplane/runplane.db" in result.stdout
    assert "above" in result.stdout
    shown = cli("runs", "show", "above", cwd=nested, columns=200)
    assert f"in the SQLite database {tmp_path}/.runplane/runplane.db" in shown.stdout
    assert snapshot(tmp_path) == before  # reading left every file as it was
    # A writer with nothing above it creates its database where it is.
    assert locate(start=tmp_path.parent).source in ("new", "found")


def test_a_database_another_user_could_plant_above_is_passed_over(
    tmp_path: Path, no_env_db: None
) -> None:
    shared = tmp_path / "shared"
    write_run(str(shared / ".runplane" / "runplane.db"), "planted", [], end="completed")
    shared.chmod(0o1777)  # like /tmp: every user may create .runplane/ in it
    mine = shared / "me"
    mine.mkdir()
    mine.chmod(0o755)
    try:
        where = locate(start=mine)
        assert where.url == f"sqlite:///{mine}/.runplane/runplane.db"
        assert where.source == "new"
        result = cli("runs", "list", cwd=mine)
        assert isinstance(result.exception, DatabaseError)
        assert f"Passed over {shared}/.runplane/runplane.db" in str(result.exception)
        # In the working directory itself, it is the one a writer would use anyway.
        assert locate(start=shared).source == "found"
    finally:
        shared.chmod(0o755)


def test_the_database_url_wins_over_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_run(str(tmp_path / ".runplane" / "runplane.db"), "found", [], end="completed")
    elsewhere = tmp_path / "elsewhere.db"
    write_run(str(elsewhere), "named", [], end="completed")
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", str(elsewhere))
    assert [r["id"] for r in cli_json("runs", "list", cwd=tmp_path)] == ["named"]
    db = str(tmp_path / ".runplane" / "runplane.db")
    assert [r["id"] for r in cli_json("runs", "list", "--db", db, cwd=tmp_path)] == ["found"]


# -- item 7: reading never writes ------------------------------------------------------------------


def test_no_database_here_says_where_it_looked_and_creates_nothing(
    tmp_path: Path, no_env_db: None
) -> None:
    here = tmp_path / "empty" / "dir"
    here.mkdir(parents=True)
    before = snapshot(tmp_path)
    for args in (["runs", "list"], ["runs", "show", "x"], ["runs", "list", "--json"]):
        result = cli(*args, cwd=here)
        assert isinstance(result.exception, DatabaseError), result.output
        message = str(result.exception)
        assert message.startswith("no runplane database here (looked for .runplane/runplane.db")
        assert f"in {here}, {here.parent}, {tmp_path}, " in message
        assert message.split(";")[0].endswith(", /)")
    assert snapshot(tmp_path) == before


def test_the_command_exits_2_with_the_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RUNPLANE_DATABASE_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "runplane", "runs", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 2
    assert "no runplane database here" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_missing_db_path_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "runs.db"
    for args in (["runs", "list"], ["runs", "show", "x"]):
        result = cli(*args, "--db", str(missing))
        assert isinstance(result.exception, DatabaseError)
        assert f"no SQLite database at {missing}; nothing was created" in str(result.exception)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    write_run(url, "known", [], end="completed")
    result = cli("runs", "show", "unknown", "--db", url)
    assert isinstance(result.exception, RunNotFoundError)
    assert str(result.exception) == (
        f"no run 'unknown' in the SQLite database {url}; `runplane runs list` shows the runs there."
    )


def test_a_bogus_status_or_state_lists_the_valid_ones(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    write_run(url, "known", [], end="completed")
    result = cli("runs", "list", "--status", "bogus", "--db", url, columns=200)
    assert result.exit_code == 2
    assert (
        "'bogus' is not a run status; use one of: queued, running, awaiting_approval, completed, "
        "failed, cancelled." in " ".join(result.output.replace("│", " ").split())
    )
    result = cli("runs", "list", "--state", "zombie", "--db", url, columns=200)
    assert result.exit_code == 2
    assert "running, orphaned, stopped, awaiting_approval" in " ".join(
        result.output.replace("│", " ").split()
    )
    result = cli("runs", "list", "--state", "stopped", "--status", "failed", "--db", url)
    assert result.exit_code == 2
    assert "stored with status 'running', not 'failed'" in " ".join(
        result.output.replace("│", " ").split()
    )


def test_reading_leaves_the_database_files_and_journal_mode_as_they_were(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    write_run(url, "known", [model_call(0)], end="completed")
    with sqlite3.connect(url) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    before = snapshot(tmp_path)
    assert cli("runs", "list", "--db", url).exit_code == 0
    assert cli("runs", "show", "known", "--db", url).exit_code == 0
    assert snapshot(tmp_path) == before
    with sqlite3.connect(url) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_file_that_is_not_a_runplane_database_is_left_untouched(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result = cli("runs", "list", "--db", str(empty))
    assert isinstance(result.exception, DatabaseError)
    assert "holds no runplane runs" in str(result.exception)
    assert empty.stat().st_size == 0


def test_the_engine_refuses_an_unknown_status(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    write_run(url, "known", [], end="completed")
    expected = "'complete' is not a run status; use one of: queued, running,"
    with pytest.raises(ValueError, match=expected):
        run_async(LocalEngine(url, read_only=True).list_runs(status="complete"))


def test_a_read_only_engine_refuses_to_run(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    write_run(url, "known", [], end="completed")
    engine = LocalEngine(url, read_only=True)
    with pytest.raises(DatabaseError, match="read-only"):
        run_async(engine.open_run(_spec("new"), lease_seconds=30))


def test_postgres_is_read_through_read_only_connections(pg_url: str) -> None:
    write_run(pg_url, "pg-run", [model_call(0)], end="completed")
    data = cli_json("runs", "show", "pg-run", "--db", pg_url)
    assert data["run"]["state"] == "completed"
    assert data["database"].startswith("database postgresql+asyncpg://")
    with_password = pg_url.replace("postgres@", "postgres:hunter2@", 1)
    assert with_password != pg_url
    for args in (["runs", "list"], ["runs", "show", "pg-run"]):
        out = cli(*args, "--db", with_password, columns=200).stdout
        assert "postgres:***@127.0.0.1" in out.splitlines()[0]
        assert "hunter2" not in out

    async def refused() -> None:
        from runplane_durable.local import sql

        engine = LocalEngine(pg_url, read_only=True)
        try:
            await engine.database.call(sql.release, "pg-run", "someone")
        finally:
            await engine.dispose()

    with pytest.raises(Exception, match="read-only transaction"):
        run_async(refused())


# -- item 8: 80 columns and pipes ------------------------------------------------------------------


def test_the_list_fits_80_columns_with_long_ids_and_never_cuts_a_state(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    ids = [
        "run_" + "3f2a9c1be4d1" * 2 + "00aa11bb",  # 36 characters
        "run_" + "3f2a9c1be4d1" * 2 + "00aa11bc",  # the same but for its last character
        "order/" + "x" * 194,  # 200 characters
        "short",
    ]
    write_run(url, ids[0], [], end="completed", agent="a-very-long-agent-name-" * 4)
    write_run(url, ids[1], [], end="release")
    write_run(url, ids[2], [], end="failed")
    write_run(url, ids[3], [model_call(0, ("b", "c2"))], end="release")
    with sqlite3.connect(url) as conn:
        conn.execute("UPDATE runplane_runs SET status = 'awaiting_approval' WHERE id = 'short'")
    result = cli("runs", "list", "--db", url, columns=80)
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header == f"4 runs in the SQLite database {url}"  # a path is never cut
    assert max(len(line) for line in lines) <= 80, result.stdout
    for state in ("completed", "stopped", "failed", "awaiting_approval"):
        assert any(state in line.split() for line in lines), (state, result.stdout)
    shown = short_ids(ids)
    assert len(set(shown.values())) == len(ids)
    for full in ids:
        assert any(shown[full] in line for line in lines)
    assert shown["short"] == "short"
    assert all(len(s) <= 20 for s in shown.values())
    assert shown[ids[0]].startswith("run_3f2a9c")
    assert shown[ids[0]].endswith("1bb")
    assert {r["id"] for r in cli_json("runs", "list", "--db", url)} == set(ids)
    # A shortened id copied from the table names its run.
    for full in ids:
        assert cli_json("runs", "show", shown[full], "--db", url)["run"]["id"] == full
    result = cli("runs", "show", "run_3f2a9c…", "--db", url)
    assert isinstance(result.exception, RunNotFoundError)
    assert "2 runs in the SQLite database" in str(result.exception)


def test_the_list_fits_a_pipe_without_columns(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    write_run(url, "run_" + "ab" * 16, [], end="completed")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run(
        [sys.executable, "-m", "runplane", "runs", "list", "--db", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert "completed" in proc.stdout.split()
    assert "\x1b[" not in proc.stdout  # no colour codes in a pipe
    assert max(len(line) for line in proc.stdout.splitlines()[1:]) <= 80


def test_short_ids_stay_unique_however_alike() -> None:
    ids = [f"run_{'0' * 28}{i:04d}" for i in range(30)] + [f"{'p' * 40}{i}" for i in range(3)]
    shown = short_ids(ids)
    assert len(set(shown.values())) == len(ids)
    assert all(full.startswith(s.split("…")[0]) for full, s in shown.items())
    assert all(full.endswith(s.split("…")[-1]) for full, s in shown.items())


@pytest.mark.parametrize("marker", [".git", "pyproject.toml"])
def test_a_new_database_goes_to_the_top_of_the_project_so_its_root_finds_it(
    tmp_path: Path, no_env_db: None, marker: str
) -> None:
    """A program first started in a subdirectory of a project, then from the project's root:
    both use one journal, so the second resumes instead of silently starting again."""
    project = tmp_path / "proj"
    sub = project / "app" / "jobs"
    sub.mkdir(parents=True)
    project.chmod(0o755)
    if marker == ".git":
        (project / ".git").mkdir()
        (project / "app" / "pyproject.toml").write_text("")  # a package inside the repository
    else:
        (project / marker).write_text("")
    first = locate(start=sub)
    assert (first.source, first.url) == ("new", f"sqlite:///{project}/.runplane/runplane.db")
    write_run(str(project / ".runplane" / "runplane.db"), "started-below", [], end="completed")
    for directory in (project, project / "app", sub):
        assert locate(start=directory).url == first.url
        assert locate(start=directory).source == "found"


def test_without_a_project_a_new_database_goes_to_the_working_directory(
    tmp_path: Path, no_env_db: None
) -> None:
    here = tmp_path / "loose"
    here.mkdir()
    assert locate(start=here).url == f"sqlite:///{here}/.runplane/runplane.db"


def test_a_project_marker_another_user_could_plant_above_is_not_a_project(
    tmp_path: Path, no_env_db: None
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / ".git").mkdir()
    shared.chmod(0o1777)
    mine = shared / "me"
    mine.mkdir()
    try:
        assert locate(start=mine).url == f"sqlite:///{mine}/.runplane/runplane.db"
    finally:
        shared.chmod(0o755)


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    resumed = NewEvent(
        "attempt_started",
        {
            "attempt": 2,
            "host": "vm",
            "pid": 7,
            "resumed": True,
            "model_calls": 1,
            "tool_outputs": 1,
        },
    )
    write_run(url, "single", [model_call(0, ("charge", "c1")), resumed], end="completed")
    out = cli("runs", "show", "single", "--db", url, columns=200).stdout
    assert "(resumed: 1 model call, 1 tool output from the journal)" in out
    assert "0 model calls, 0 tool calls, 0 requests, " in out  # the record counts no usage here
