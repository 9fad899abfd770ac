"""Where the run database is: a URL given, RUNPLANE_DATABASE_URL, or the nearest `.runplane/`.

Without a URL, the database is found the way git finds `.git`: from the working directory up to
the filesystem root, the first directory whose `.runplane/runplane.db` exists. A program
started from a subdirectory, or from the parent of the directory it ran in before, so finds the
runs it already has instead of silently starting them again in a new database. When none is
found, a program that writes creates `.runplane/` at the top of the project it runs in (the
nearest directory holding `.git`, else the nearest holding `pyproject.toml`), else in the working
directory: so a project has one journal wherever in it a program is started, and a later start
from its root or any directory below finds it. A command that only reads says where it looked.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .. import lazy_errors as errors
from .failures import ENV_DATABASE_URL

__all__ = [
    "DEFAULT_DIR",
    "DEFAULT_FILE",
    "Location",
    "locate",
    "nearest_database",
    "passed_over",
    "project_root",
    "redact",
]

DEFAULT_DIR = ".runplane"
DEFAULT_FILE = "runplane.db"

Source = Literal["argument", "environment", "found", "new"]


@dataclass(frozen=True)
class Location:
    """A database URL, and how it was chosen.

    `source`: "argument" (a URL or path given in code or with --db), "environment"
    (RUNPLANE_DATABASE_URL), "found" (a `.runplane/runplane.db` in the working directory or
    above it) or "new" (none found: where one will be created, see `project_root`). `searched`
    holds the directories looked in, nearest first, when the database was looked for.
    """

    url: str
    source: Source
    searched: tuple[Path, ...] = ()

    @property
    def sqlite_path(self) -> Path | None:
        """The file of a SQLite database named by a path (not `:memory:` or a `file:` URI)."""
        parsed = make_url(self.url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database:
            return None
        if parsed.database == ":memory:" or parsed.database.startswith("file:"):
            return None
        return Path(parsed.database)


def nearest_database(start: Path | None = None) -> tuple[Path | None, tuple[Path, ...]]:
    """The nearest `.runplane/runplane.db` from `start` (the working directory) upwards, and
    the directories looked in, nearest first. Reads the filesystem, never writes to it.

    Above the working directory, a `.runplane/` that another user could have put there (in a
    directory every user may write to, such as /tmp, or owned by another user) is passed over,
    as git passes over such a `.git`: its journal would be replayed into this user's programs.
    """
    here = (start or Path.cwd()).resolve()
    searched: list[Path] = []
    for directory in (here, *here.parents):
        searched.append(directory)
        candidate = directory / DEFAULT_DIR / DEFAULT_FILE
        try:
            if candidate.is_file() and (directory == here or _trusted(directory)):
                return candidate, tuple(searched)
        except OSError:  # a directory this user may not look into: keep walking up
            continue
    return None, tuple(searched)


def passed_over(searched: tuple[Path, ...]) -> list[Path]:
    """The databases `nearest_database` found in `searched` but did not trust."""
    return [
        d / DEFAULT_DIR / DEFAULT_FILE
        for d in searched[1:]
        if (d / DEFAULT_DIR / DEFAULT_FILE).is_file() and not _trusted(d)
    ]


def _trusted(directory: Path) -> bool:
    """False when another user could have created `directory/.runplane`."""
    if directory.stat().st_mode & stat.S_IWOTH:
        return False
    geteuid = getattr(os, "geteuid", None)  # not on Windows
    return geteuid is None or (directory / DEFAULT_DIR).stat().st_uid == geteuid()


PROJECT_MARKERS = (".git", ".hg")
PACKAGE_MARKERS = ("pyproject.toml",)


def project_root(here: Path) -> Path:
    """Where a new `.runplane/` goes: the top of the repository `here` is in (its `.git` or
    `.hg`), else the nearest directory with a `pyproject.toml`, else `here` itself. Only
    directories no other user could have prepared count (see `_trusted`)."""
    package: Path | None = None
    for directory in (here, *here.parents):
        try:
            if directory != here and not _trusted_dir(directory):
                continue
            if any((directory / marker).exists() for marker in PROJECT_MARKERS):
                return directory
            if package is None and any((directory / m).is_file() for m in PACKAGE_MARKERS):
                package = directory
        except OSError:
            continue
    return package or here


def _trusted_dir(directory: Path) -> bool:
    """False for a directory every user may write to or one owned by another user."""
    info = directory.stat()
    geteuid = getattr(os, "geteuid", None)
    return not info.st_mode & stat.S_IWOTH and (geteuid is None or info.st_uid == geteuid())


def locate(url: str | None = None, *, start: Path | None = None) -> Location:
    """Where the database is: `url`, else RUNPLANE_DATABASE_URL, else the nearest `.runplane/`.

    Accepts a plain file path, `sqlite:///...`, or `postgresql://...` / `postgres://...` with
    any driver suffix, and picks the driver itself, so users write the URLs they already know.
    """
    if url:
        return Location(_sqlalchemy_url(url, "the database URL"), "argument")
    from_env = os.environ.get(ENV_DATABASE_URL) or ""
    if from_env:
        return Location(_sqlalchemy_url(from_env, ENV_DATABASE_URL), "environment")
    found, searched = nearest_database(start)
    if found is not None:
        return Location(f"sqlite:///{found}", "found", searched)
    home = project_root(searched[0])
    return Location(f"sqlite:///{home / DEFAULT_DIR / DEFAULT_FILE}", "new", searched)


def _sqlalchemy_url(raw: str, named_by: str) -> str:
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    scheme, rest = raw.split("://", 1)
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite://{rest}"
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    raise errors.DatabaseError(
        f"{named_by} {redact(raw)!r} names a database runplane-durable does not support; "
        "use a file path, sqlite:///PATH or postgresql://USER@HOST/DB."
    )


def redact(url: str) -> str:
    """`url` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
