"""The one environment the nox sessions share: installed once, rebuilt when its inputs change.

Installing runplane's five distributions takes one to two minutes; every session that needs them
used to pay it in its own venv. They now share one venv, stamped with a fingerprint of what was
installed into it (the pyproject.toml files, the requirement list, the interpreter). A different
fingerprint rebuilds it from nothing, never on top: an environment left over from an older
pyproject could otherwise still hold a dependency the new one forgot to declare.

A session that installs more than the project (`sdk_tests` adds the SDK's own test dependencies)
marks the environment as extended; the next session that wants the project alone rebuilds it.

Plain Python, no nox: the noxfile and tests/ci/test_shared_env.py both import it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SharedEnv", "fingerprint"]

STAMP_NAME = "runplane-installed.stamp"
EXTENDED_NAME = "runplane-extended.marker"


def fingerprint(root: Path, pyprojects: Iterable[str], requirements: Iterable[str]) -> str:
    """What an install depends on: each pyproject's bytes, the pip arguments, the interpreter."""
    digest = hashlib.sha256()
    digest.update(f"python {sys.version}\n".encode())
    for requirement in requirements:
        digest.update(f"requirement {requirement}\n".encode())
    for name in pyprojects:
        data = (root / name).read_bytes()
        digest.update(f"file {name} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


class SharedEnv:
    """A venv at `location` and the stamp that says what was installed in it."""

    def __init__(self, location: Path) -> None:
        self.location = location

    @property
    def bin(self) -> Path:
        return self.location / ("Scripts" if os.name == "nt" else "bin")

    def executable(self, name: str) -> str:
        suffix = ".exe" if os.name == "nt" else ""
        return str(self.bin / f"{name}{suffix}")

    def activation(self) -> dict[str, str]:
        """Environment variables that make commands run as in the activated venv."""
        return {
            "VIRTUAL_ENV": str(self.location),
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def stale_because(self, stamp: str, *, accept_extended: bool = False) -> str | None:
        """None when the environment holds exactly `stamp`'s install, else why to rebuild it."""
        stamp_file = self.location / STAMP_NAME
        if not stamp_file.is_file() or not Path(self.executable("python")).exists():
            return "not installed yet"
        if stamp_file.read_text().strip() != stamp:
            return "a pyproject.toml or the requirement list changed since it was installed"
        if not accept_extended and (self.location / EXTENDED_NAME).exists():
            return "sdk_tests installed the SDK's test dependencies into it"
        return None

    def mark_installed(self, stamp: str) -> None:
        """Written only after pip succeeded, so an interrupted install is never reused."""
        (self.location / STAMP_NAME).write_text(stamp + "\n")

    def mark_extended(self) -> None:
        (self.location / EXTENDED_NAME).write_text(
            "a session installed packages beyond the project's; sessions rebuild before use\n"
        )
