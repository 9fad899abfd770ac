"""The `runplane` command: core subcommands, plugin subcommands, and its error exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer
from support.backends import BackendPlugin, RecordingBackend
from support.dists import forget_modules, make_dist
from typer.testing import CliRunner

import runplane
from runplane.cli import build_app

RUNPLANE = [sys.executable, "-m", "runplane"]
ENV = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "OPENAI_API_KEY": ""}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUNPLANE, *args], capture_output=True, text=True, env=env or ENV, timeout=120, check=False
    )


def test_backends_json_lists_the_direct_backend() -> None:
    proc = _run("backends", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["openai"]["distribution"] == "runplane-openai"
    assert rows["openai"]["version"] == "0.1.0"
    assert rows["durable"]["distribution"] == "runplane-durable"


def test_backends_table() -> None:
    proc = _run("backends")
    assert proc.returncode == 0
    assert "runplane-openai" in proc.stdout
    assert "openai" in proc.stdout


def test_plugins_add_subcommands_through_the_hook() -> None:
    class CliPlugin:
        @runplane.hookimpl
        def runplane_cli(self, app: typer.Typer) -> None:
            @app.command("hello")
            def hello(name: str) -> None:
                typer.echo(f"hello {name}")

    registry = runplane.Registry("runplane_test_cli_empty")
    registry.register(CliPlugin(), name="cli")
    registry.register(BackendPlugin({"rec": RecordingBackend}), name="rec")
    result = CliRunner().invoke(build_app(registry), ["hello", "world"])
    assert result.exit_code == 0
    assert result.output.strip() == "hello world"
    listing = CliRunner().invoke(build_app(registry), ["backends", "--json"])
    assert json.loads(listing.output)[0]["distribution"] == "<in-process>"


def test_runplane_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    # A path longer than a terminal line: the message is one line, never broken inside a word
    # (the terminal wraps it where it must, and a copied path stays whole).
    where = tmp_path / ("deep-" * 20) / "missing.db"
    proc = _run("runs", "show", "no-such-run", "--db", str(where))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert f"no SQLite database at {where}" in line
    assert "Traceback" not in proc.stderr


TYPO_PLUGIN = """
import runplane

@runplane.hookimpl
def runplane_backend():  # misspelled: runplane_backends
    return {}
"""

DURABLE_RUN = """
from agents import Agent
from agents.testing import ScriptedModel, assistant_message
from runplane_durable import Runner

agent = Agent(name="a", model=ScriptedModel([[assistant_message("still works")]]))
print(Runner.run_sync(agent, "hi").final_output)
"""


def test_a_broken_plugin_is_listed_and_warned_about_and_breaks_nothing_else(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    make_dist(
        site,
        "typo-runplane",
        entry_points={"typo": "cli_typo_plugin"},
        modules={"cli_typo_plugin": TYPO_PLUGIN},
    )
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(site), ENV.get("PYTHONPATH", "")])}
    try:
        table = _run("backends", env=env)
        listing = _run("backends", "--json", env=env)
        # The durable run first: it creates the database that `runs list` then reads.
        durable = subprocess.run(
            [sys.executable, "-c", DURABLE_RUN],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        runs = subprocess.run(
            [*RUNPLANE, "runs", "list"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
    finally:
        forget_modules("cli_typo_plugin")
    assert table.returncode == 0, table.stderr
    flat = " ".join(table.stdout.split())
    assert "typo-runplane" in flat
    assert "broken" in flat
    assert "runplane-openai" in flat  # the others are still listed
    stderr = " ".join(table.stderr.split())
    assert stderr.startswith("warning: runplane plugin 'typo'")  # one readable line, first
    assert "warnings.warn" not in stderr  # not Python's source-line format
    assert "typo-runplane" in stderr
    assert "runplane_backend" in stderr
    assert "Traceback" not in table.stderr
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["openai"]["status"] == "ok"
    assert rows["typo"]["status"] == "broken"
    assert rows["typo"]["distribution"] == "typo-runplane"
    assert "runplane_backend" in rows["typo"]["error"]
    assert runs.returncode == 0, runs.stderr
    assert "typo-runplane" in runs.stderr
    assert durable.returncode == 0, durable.stderr
    assert durable.stdout.strip() == "still works"
    assert "BrokenPluginWarning" in durable.stderr  # a program sees the warning class
    assert "typo-runplane" in durable.stderr


def test_asking_for_a_broken_plugins_backend_raises_its_error(tmp_path: Path) -> None:
    make_dist(
        tmp_path,
        "broken-runplane",
        entry_points={"broken": "cli_broken_plugin"},
        modules={"cli_broken_plugin": "raise RuntimeError('half-installed')\n"},
    )
    env = {
        **ENV,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV.get("PYTHONPATH", "")]),
        "RUNPLANE_BACKEND": "broken",
    }
    program = "import runplane, agents\nrunplane.Runner.run_sync(agents.Agent(name='a'), 'x')\n"
    proc = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    forget_modules("cli_broken_plugin")
    assert proc.returncode == 1
    assert "runplane.errors.PluginLoadError" in proc.stderr
    assert "broken-runplane" in proc.stderr
    assert "half-installed" in proc.stderr
