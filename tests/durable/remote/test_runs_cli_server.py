"""`runplane runs list|show --server URL`: the same runs, read through a server instead of the file.

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
    for command in (["runs", "list"], ["runs", "show", "x"]):
        result = cli(*command, *args)
        assert result.exit_code == 2
        assert says in result.output
