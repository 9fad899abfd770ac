"""CI runs exactly the README's test command, so a green CI means that command works."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Test\n") :]
    command = re.search(r"```console\n(.+?)\n```", section, re.S)
    assert command is not None, "the README's Test section has no console block"
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert script[-1] == command.group(1)
