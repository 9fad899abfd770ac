"""`runplane runs cancel` and `runplane runs prune`, and a pending cancel in `runs list|show`.

Runs are written through `LocalEngine` sessions in this process (an open session is a process
executing its run); the commands run through the real `runplane` app. Cancelling runs executing
in another real process is tests/durable/runtime/test_cancel.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runplane_durable import DatabaseError, LocalEngine, RunNotFoundError
from runplane_durable.cli.runs import parse_duration
from runplane_durable.engine import RunSession
from runplane_durable.errors import RunFinishedError
from runplane_durable.records import RunSpec
from support.durable import run_async
from typer.testing import CliRunner

from runplane.cli import build_app

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def _spec(rid: str) -> RunSpec:
    return RunSpec(rid, "writer", {"text": "go"}, "fp-writer", {"mode": "run"})


def open_run(url: str, rid: str) -> tuple[LocalEngine, RunSession]:
    engine = LocalEngine(url)
    return engine, run_async(engine.open_run(_spec(rid), lease_seconds=30))


def finished(url: str, rid: str, status: Any) -> None:
    async def go() -> None:
        engine = LocalEngine(url)
        session = await engine.open_run(_spec(rid), lease_seconds=30)
        await session.finish(status, error=ValueError("x") if status == "failed" else None)
        await session.close()
        await engine.dispose()

    run_async(go())


def stopped(url: str, rid: str) -> None:
    engine, session = open_run(url, rid)
    run_async(session.release())
    run_async(session.close())
    run_async(engine.dispose())


def get(url: str, rid: str) -> Any:
    async def go() -> Any:
        engine = LocalEngine(url, read_only=True)
        try:
            return await engine.get_run(rid)
        finally:
            await engine.dispose()

    return run_async(go())


# -- runs cancel ---------------------------------------------------------------------------------


def test_cancel_a_stopped_run_is_at_once(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    stopped(url, "stop-1")
    result = cli("runs", "cancel", "stop-1", "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"run stop-1 is cancelled (in the SQLite database {url})\n"
    assert get(url, "stop-1").status == "cancelled"
    again = cli("runs", "cancel", "stop-1", "--db", url, "--json")  # idempotent
    assert json.loads(again.stdout)["status"] == "cancelled"


def test_cancel_an_executing_run_asks_its_process_and_shows_it_pending(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    engine, session = open_run(url, "live-1")
    try:
        result = cli("runs", "cancel", "live-1", "--after-turn", "--db", url)
        assert result.exit_code == 0, result.output
        text = " ".join(result.stdout.split())
        assert text.startswith("asked run live-1 to stop after its current turn: its process (")
        assert "within about a second" in text
        data = json.loads(cli("runs", "cancel", "live-1", "--db", url, "--json").stdout)
        assert (data["status"], data["state"], data["cancel_requested"]) == (
            "running",
            "running",
            "immediate",
        )
        assert "cancel requested (immediate): its process stops it at once" in data["state_detail"]
        listed = cli("runs", "list", "--db", url).stdout
        assert "running (cancel)" in listed  # as narrow as awaiting_approval: fits 80 columns
        assert "(cancel) marks a run asked to stop that has not stopped yet." in listed
        shown = cli("runs", "show", "live-1", "--db", url)
        assert "state running, cancel requested" in shown.stdout
        flat = " ".join(shown.stdout.split())
        assert "cancel requested (after_turn) by " in flat
        assert f"; asked its process ({session.record.owner.split(':')[0]} pid " in flat
        assert "running, cancel requested: executing in" in flat
        assert run_async(session.poll_cancel()) == "immediate"
        run_async(session.finish("cancelled"))
    finally:
        run_async(session.close())
        run_async(engine.dispose())
    assert "(cancel)" not in cli("runs", "list", "--db", url).stdout


def test_cancel_takes_a_shortened_id_and_refuses_unknown_and_finished_runs(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "runs.db")
    long_id = "a-rather-long-run-id-" + uuid.uuid4().hex
    stopped(url, long_id)
    shown = cli("runs", "list", "--db", url).stdout
    short = next(w for w in shown.split() if "…" in w)
    assert cli("runs", "cancel", short, "--db", url).exit_code == 0
    assert get(url, long_id).status == "cancelled"
    unknown = cli("runs", "cancel", "nope", "--db", url)
    assert isinstance(unknown.exception, RunNotFoundError)
    finished(url, "done-1", "completed")
    refused = cli("runs", "cancel", "done-1", "--db", url)
    assert isinstance(refused.exception, RunFinishedError)
    assert get(url, "done-1").status == "completed"


def test_cancel_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = cli("runs", "cancel", "x", "--db", str(missing))
    assert isinstance(result.exception, DatabaseError)
    assert list(tmp_path.iterdir()) == []


# -- runs prune ----------------------------------------------------------------------------------


def _age(url: str, rid: str, days: float) -> None:
    """Make run `rid` look finished `days` ago (the file is ours: no process writes it now)."""
    with sqlite3.connect(url) as conn:
        conn.execute(
            "UPDATE runplane_runs SET finished_at = ? WHERE id = ?",
            (time.time() - days * 86400, rid),
        )


def test_prune_dry_run_counts_and_prune_deletes_old_finished_runs_only(tmp_path: Path) -> None:
    url = str(tmp_path / "runs.db")
    for rid, status in [("old-ok", "completed"), ("old-bad", "failed"), ("old-no", "cancelled")]:
        finished(url, rid, status)
        _age(url, rid, 40)
    finished(url, "new-ok", "completed")
    stopped(url, "still-stopped")
    with sqlite3.connect(url) as conn:  # a tool task of an old run goes with it
        conn.execute(
            "INSERT INTO runplane_tasks (id, run_id, call_key, queue, tool_name, call_id, "
            "arguments, status, attempts, max_attempts, retry_delay, available_at, created_at, "
            "updated_at) VALUES ('t1', 'old-ok', '0:c', 'default', 'tool', 'c', '{}', "
            "'completed', 1, 3, 1.0, 0, 0, 0)"
        )
    dry = cli("runs", "prune", "--older-than", "30d", "--dry-run", "--db", url)
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("would delete 3 runs that finished before ")
    assert dry.stdout.rstrip().endswith("dry run")
    assert len(json.loads(cli("runs", "list", "--db", url, "--json").stdout)) == 5
    done = cli("runs", "prune", "--older-than", "30d", "--db", url)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("deleted 3 runs that finished before ")
    left = {r["id"] for r in json.loads(cli("runs", "list", "--db", url, "--json").stdout)}
    assert left == {"new-ok", "still-stopped"}
    with sqlite3.connect(url) as conn:
        for table in ("runplane_events", "runplane_journal", "runplane_tasks"):
            rows = conn.execute(
                f"SELECT count(*) FROM {table} WHERE run_id LIKE 'old-%'"
            ).fetchone()
            assert rows == (0,), table
    again = cli("runs", "prune", "--older-than", "30d", "--db", url)
    assert again.stdout.startswith("deleted 0 runs ")
    one = cli("runs", "prune", "--older-than", "0s", "--dry-run", "--db", url)
    assert one.stdout.startswith("would delete 1 run that finished before ")


@pytest.mark.parametrize("bad", ["30", "d", "30x", "-1d", "1d2h", "", "thirty days"])
def test_prune_refuses_a_bad_duration_saying_what_one_looks_like(tmp_path: Path, bad: str) -> None:
    url = str(tmp_path / "runs.db")
    finished(url, "old", "completed")
    result = cli("runs", "prune", "--older-than", bad, "--db", url)
    assert result.exit_code == 2
    flat = " ".join(result.output.replace("│", " ").split())
    assert "Invalid value for '--older-than'" in flat
    assert "is not a duration; give a number and a unit: 30d (days)" in flat
    assert get(url, "old").status == "completed"


def test_prune_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = cli("runs", "prune", "--older-than", "1d", "--db", str(missing))
    assert isinstance(result.exception, DatabaseError)
    assert list(tmp_path.iterdir()) == []


@given(
    st.one_of(
        st.integers(0, 10**6), st.floats(0, 10**6, allow_nan=False).map(lambda f: round(f, 3))
    ),
    st.sampled_from(sorted(UNITS)),
    st.sampled_from(["", " "]),
    st.booleans(),
)
def test_a_duration_is_a_number_and_a_unit(number: float, unit: str, pad: str, upper: bool) -> None:
    text = f"{pad}{number}{unit.upper() if upper else unit}{pad}"
    assert parse_duration(text) == pytest.approx(float(number) * UNITS[unit])


@given(st.text(max_size=12))
def test_anything_else_is_refused_with_what_a_duration_looks_like(text: str) -> None:
    stripped = text.strip().lower()
    number, unit = stripped[:-1], stripped[-1:]
    digits = number.replace(".", "", 1)
    if unit in UNITS and digits.isascii() and digits.isdigit() and number[0] != "." != number[-1]:
        assert parse_duration(text) == float(number) * UNITS[unit]
        return
    with pytest.raises(ValueError, match="is not a duration; give a number and a unit"):
        parse_duration(text)
