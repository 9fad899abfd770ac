"""docs/host.md's complete example works as written: run offline, it prints what the page shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "host.md"


def test_the_complete_example_prints_what_the_page_shows(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## A complete example", 1)[1].split("\n## ", 1)[0]
    program = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```console\n\$ python assistant.py\n(.*?)```", section, re.S)
    assert program is not None
    assert shown is not None
    (tmp_path / "assistant.py").write_text(program.group(1))
    env = {k: v for k, v in os.environ.items() if k != "RUNPLANE_BACKEND"}
    proc = subprocess.run(
        [sys.executable, "assistant.py"],
        cwd=tmp_path,
        env={**env, "OPENAI_AGENTS_DISABLE_TRACING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == shown.group(1)
