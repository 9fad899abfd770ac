"""Where the local model's binary and weights live, and how they get there safely.

Everything is keyed by version (binary) or checksum (weights) so a build happens once per machine
and two versions never overwrite each other. Writers hold a per-artifact lock and publish with a
single rename, so a killed build or download never leaves something that looks finished."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ENV_CACHE_DIR", "cache_dir", "locked", "remove_stale"]

ENV_CACHE_DIR = "RUNPLANE_CACHE_DIR"
STAGING_PREFIX = ".staging-"


def cache_dir() -> Path:
    """`$RUNPLANE_CACHE_DIR`, else `$XDG_CACHE_HOME/runplane`, else `~/.cache/runplane`."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "runplane"


@contextmanager
def locked(directory: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `directory/.lock`: concurrent test runs on one machine then
    build or download once, the others wait and reuse the result."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking, the rename still protects
        yield
        return
    with open(directory / ".lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale(directory: Path) -> None:
    """Delete staging leftovers of killed runs; call only while holding `locked(directory)`."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name.startswith(STAGING_PREFIX):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
