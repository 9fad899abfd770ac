"""A third party's backend, pip-installed from tests/third_party_backend, as docs describe it.

It is installed with a real `pip install` into its own target directory (so the rest of the test
session never sees it), then used only through subprocesses that put that directory on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]
EXAMPLE = TESTS / "third_party_backend"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("third-party-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def _env(site: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in [str(site), os.environ.get("PYTHONPATH", "")] if p)
    return {**os.environ, "PYTHONPATH": path, "OPENAI_AGENTS_DISABLE_TRACING": "1", **extra}


def _python(site: Path, code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_env(site, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_listed_by_runplane_backends(site: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runplane", "backends", "--json"],
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["deadline"]["distribution"] == "runplane-example-deadline"
    assert rows["deadline"]["version"] == "0.3.0"
    assert "openai" in rows


def test_selectable_by_name_import_line_and_environment(site: Path) -> None:
    proc = _python(
        site,
        """
        import asyncio, time
        import runplane
        from agents import Agent, function_tool
        from agents.testing import ScriptedModel, assistant_message, function_call
        from runplane_deadline import DeadlineBackend, DeadlineExceeded, Runner

        def agent(reply):
            return Agent(name="a", model=ScriptedModel([[assistant_message(reply)]]))

        assert runplane.runner("deadline").run_sync(agent("by name"), "x").final_output == "by name"
        assert Runner.run_sync(agent("by import"), "x").final_output == "by import"
        assert runplane.Runner.run_sync(agent("by env"), "x").final_output == "by env"
        assert isinstance(runplane.default_registry().get("deadline"), DeadlineBackend)

        @function_tool
        async def slow() -> str:
            await asyncio.sleep(120)
            return "late"

        slow_agent = Agent(
            name="slow",
            tools=[slow],
            model=ScriptedModel(
                [[function_call("slow", {}, call_id="c1")], [assistant_message("x")]]
            ),
        )
        started = time.monotonic()
        try:
            Runner.run_sync(slow_agent, "x")
        except DeadlineExceeded as exc:
            assert "5 s deadline" in str(exc), exc
        else:
            raise AssertionError("no deadline")
        assert time.monotonic() - started < 60  # cut off, long before the tool's 120 s
        print("ok")
        """,
        RUNPLANE_BACKEND="deadline",
        # Every run here is under the deadline: 5 s leaves the quick ones room on a loaded machine.
        RUNPLANE_DEADLINE_SECONDS="5",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_checked_by_the_conformance_suite(site: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "runplane_conformance",
            "--runplane-backend",
            "deadline",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=site,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
    assert "[deadline" in proc.stdout or "deadline" in proc.stdout


def test_writing_a_backend_doc_quotes_the_example_verbatim() -> None:
    """docs/writing-a-backend.md shows these files; a drifted copy would teach broken code."""
    doc = (TESTS.parent / "docs" / "writing-a-backend.md").read_text(encoding="utf-8")
    for rel in [
        "pyproject.toml",
        "src/runplane_deadline/__init__.py",
        "src/runplane_deadline/plugin.py",
        "src/runplane_deadline/backend.py",
    ]:
        source = (EXAMPLE / rel).read_text(encoding="utf-8").strip()
        assert source in doc, f"docs/writing-a-backend.md no longer quotes {rel} verbatim"
