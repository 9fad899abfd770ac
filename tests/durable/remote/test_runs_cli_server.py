"""`runplane runs list|show|cancel|prune --server URL`: the same runs, read and changed through a
server instead of the file; `runplane worker --server URL` takes the same option.

(The listing and a run's history use the server's read routes, engineer S's part of issue #11.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runplane_durable import LocalEngine
from runplane_durable.errors import RunFinishedError
from runplane_durable.records import JournalEntry, NewEvent, RunSpec
from support.durable import run_async, sqlite_url
from support.durable_server import Server, running_server
from typer.testing import CliRunner

from runplane.cli import build_app


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner(env=env).invoke(build_app(), list(args))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    where = tmp_path_factory.mktemp("cli-server")
    url = sqlite_url(where)

    async def write() -> None:
        engine = LocalEngine(url)
        try:
            spec = RunSpec("cli-1", "echo", {"text": "hi"}, "fp", {"mode": "run"})
            session = await engine.open_run(spec, lease_seconds=30)
            await session.append(
                journal=JournalEntry("tool", "0:c", None, {"json": "out"}),
                events=[NewEvent("tool_call", {"name": "t", "call_id": "c", "key": "0:c"})],
            )
            await session.finish("completed", final_output={"json": "done"})
            await session.close()
        finally:
            await engine.dispose()

    run_async(write())
    with running_server(url, where / "server.log") as server:
        yield server, url


def test_list_and_show_read_the_same_runs_through_the_server(served: tuple[Server, str]) -> None:
    server, url = served
    path = url.removeprefix("sqlite:///")
    for command in (["runs", "list", "--json"], ["runs", "show", "cli-1", "--json"]):
        direct = cli(*command, "--db", path)
        remote = cli(*command, "--server", server.url)
        assert remote.exit_code == 0, remote.output
        assert direct.exit_code == 0, direct.output
        got, want = json.loads(remote.stdout), json.loads(direct.stdout)
        if isinstance(got, dict):
            assert got.pop("database") == f"runplane server {server.url}"
            want.pop("database")
        assert got == want
    shown = cli("runs", "list", "--server", server.url)
    assert f"1 run in the runplane server {server.url}" in shown.stdout


def test_the_server_setting_is_read_when_no_option_is_given(served: tuple[Server, str]) -> None:
    server, _ = served
    env = {"RUNPLANE_SERVER_URL": server.url, "RUNPLANE_DATABASE_URL": ""}
    result = cli("runs", "show", "cli-1", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run"]["status"] == "completed"
    assert os.environ.get("RUNPLANE_SERVER_URL") is None  # CliRunner's env was its own


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--db", "x.db", "--server", "http://127.0.0.1:1"], "not both"),
        (["--server", "runs.db"], "'runs.db' is not a server's URL"),
    ],
)
def test_where_to_read_is_one_place(args: list[str], says: str, tmp_path: Path) -> None:
    commands = (
        ["runs", "list"],
        ["runs", "show", "x"],
        ["runs", "cancel", "x"],
        ["runs", "prune", "--older-than", "1d"],
        ["worker", "jobs"],
    )
    for command in commands:
        result = cli(*command, *args)
        assert result.exit_code == 2
        assert says in result.output


@pytest.fixture
def stopped_and_finished(tmp_path: Path) -> Iterator[Server]:
    """A server on a database holding a stopped run ("stopped-1": its process gave its lease
    back) and a finished one ("done-1")."""
    url = sqlite_url(tmp_path)

    async def write() -> None:
        engine = LocalEngine(url)
        try:
            for rid in ("stopped-1", "done-1"):
                spec = RunSpec(rid, "echo", {"text": rid}, f"fp-{rid}", {"mode": "run"})
                session = await engine.open_run(spec, lease_seconds=30)
                if rid == "done-1":
                    await session.finish("completed", final_output={"json": "done"})
                else:
                    await session.release()
                await session.close()
        finally:
            await engine.dispose()

    run_async(write())
    with running_server(url, tmp_path / "server.log") as server:
        yield server


def test_cancel_and_prune_change_the_runs_through_the_server(
    stopped_and_finished: Server,
) -> None:
    server = stopped_and_finished
    where = ("--server", server.url)
    cancelled = cli("runs", "cancel", "stopped-1", *where)
    assert cancelled.exit_code == 0, cancelled.output
    said = " ".join(cancelled.stdout.split())
    assert f"run stopped-1 is cancelled (in the runplane server {server.url})" in said
    refused = cli("runs", "cancel", "done-1", *where)
    # RunFinishedError, crossed as itself (the command's main prints it; in process, raised)
    assert isinstance(refused.exception, RunFinishedError), refused.output

    dry = cli("runs", "prune", "--older-than", "0s", "--dry-run", *where)
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 runs" in dry.stdout
    assert f"in the runplane server {server.url}" in dry.stdout
    pruned = cli("runs", "prune", "--older-than", "0s", *where)
    assert pruned.exit_code == 0, pruned.output
    assert "deleted 2 runs" in pruned.stdout
    listed = cli("runs", "list", "--json", *where)
    assert json.loads(listed.stdout) == []
    log = (Path(server.log)).read_text()
    assert '"POST /api/v1/runs/stopped-1/cancel HTTP' in log
    assert '"POST /api/v1/prune HTTP' in log
