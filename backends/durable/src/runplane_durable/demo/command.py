"""The commands the demo prints for the user: ones that work pasted where the demo ran.

The demo may run from a venv the user never activated (`.venv/bin/runplane demo`, or a nox
session's environment), where a bare `runplane` is "command not found". So it names the
executable of the environment it runs in: bare when `runplane` on PATH is that very file,
relative when it lies under the working directory, absolute otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["runplane_command", "shell_path"]


def runplane_command(
    *, cwd: Path | None = None, scripts: Path | None = None, path: str | None = None
) -> str:
    """The shell words that run this environment's `runplane` from `cwd` (default: this one)."""
    cwd = Path.cwd() if cwd is None else cwd
    scripts = Path(sysconfig.get_path("scripts")) if scripts is None else scripts
    own = shutil.which("runplane", path=str(scripts))
    if own is None:  # installed without its console script: the module runs the same CLI
        return f"{shlex.quote(sys.executable)} -m runplane"
    on_path = shutil.which("runplane", path=os.environ.get("PATH", "") if path is None else path)
    if on_path is not None and os.path.samefile(on_path, own):
        return "runplane"
    return shell_path(Path(own).resolve(), cwd, fallback=own)


def shell_path(path: Path, cwd: Path, *, fallback: str | None = None) -> str:
    """`path` as one shell word that runs it from `cwd`: relative under `cwd`, else absolute."""
    if path.is_relative_to(cwd.resolve()):
        relative = str(path.relative_to(cwd.resolve()))
        # A word with no slash would be looked up on PATH, not run from here.
        return shlex.quote(relative if os.sep in relative else f".{os.sep}{relative}")
    return shlex.quote(fallback if fallback is not None else str(path))
