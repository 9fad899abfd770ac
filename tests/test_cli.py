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
    proc = _run("runs", "show", "no-such-run", "--db", str(tmp_path / "missing.db"))
    assert proc.returncode == 2
    assert f"no SQLite database at {tmp_path / 'missing.db'}" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def test_broken_plugin_makes_every_command_say_which_distribution(tmp_path: Path) -> None:
    make_dist(
        tmp_path,
        "broken-runplane",
        entry_points={"broken": "cli_broken_plugin"},
        modules={"cli_broken_plugin": "raise RuntimeError('half-installed')\n"},
    )
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV.get("PYTHONPATH", "")])}
    proc = _run("backends", env=env)
    forget_modules("cli_broken_plugin")
    assert proc.returncode == 2
    stderr = " ".join(proc.stderr.split())
    assert "broken-runplane" in stderr
    assert "half-installed" in stderr
    assert "Traceback" not in proc.stderr
