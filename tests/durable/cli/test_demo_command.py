"""The `runplane` command the demo prints: it must run pasted as printed, from where it ran."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from runplane_durable.demo.command import runplane_command
from runplane_durable.demo.parent import _describe_prior
from runplane_durable.records import RunRecord, RunStatus


def _scripts(at: Path) -> Path:
    at.mkdir(parents=True)
    exe = at / "runplane"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return at


def test_bare_when_runplane_on_path_is_this_environments(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path / "venv" / "bin")
    assert runplane_command(cwd=tmp_path, scripts=scripts, path=str(scripts)) == "runplane"


def test_relative_when_the_environment_is_under_the_working_directory(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path / ".venv" / "bin")
    assert runplane_command(cwd=tmp_path, scripts=scripts, path="") == ".venv/bin/runplane"


def test_absolute_and_quoted_when_the_environment_is_elsewhere(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path / "a venv" / "bin")
    cwd = tmp_path / "work"
    cwd.mkdir()
    printed = runplane_command(cwd=cwd, scripts=scripts, path="")
    assert shlex.split(printed) == [str(scripts / "runplane")]


def test_another_runplane_on_path_does_not_count(tmp_path: Path) -> None:
    """A different install's `runplane` would read runs with other code: name ours."""
    ours = _scripts(tmp_path / "ours" / "bin")
    other = _scripts(tmp_path / "other" / "bin")
    cwd = tmp_path / "work"
    cwd.mkdir()
    assert runplane_command(cwd=cwd, scripts=ours, path=str(other)) == str(ours / "runplane")


def test_a_script_in_the_working_directory_itself_gets_a_dot_slash(tmp_path: Path) -> None:
    _scripts(tmp_path / "here")
    cwd = tmp_path / "here"
    assert runplane_command(cwd=cwd, scripts=cwd, path="") == "./runplane"


def test_the_module_when_there_is_no_console_script(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    printed = runplane_command(cwd=tmp_path, scripts=empty, path="")
    assert shlex.split(printed) == [sys.executable, "-m", "runplane"]


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("completed", "finished, so running it again replays its stored result"),
        ("cancelled", "cancelled, so it cannot run again: use a new run id"),
        ("failed", "not finished, so this run resumes it"),
        ("running", "not finished, so this run resumes it"),
    ],
)
def test_the_demo_says_what_running_a_known_id_again_does(status: RunStatus, says: str) -> None:
    prior = RunRecord(
        "demo-x",
        "a",
        status,
        {},
        {},
        0.0,
        0.0,
        None,
        None,
        None,
        0,
        0,
        0,
        0,
        0,
        0,
        None,
        None,
        None,
    )
    assert _describe_prior(prior, []).endswith(f": {says}")
