"""Driver errors turned into errors that say which database and what to do, and how a failure
left the link to the database (`Link`): whether what failed may be tried again, and whether it
may have committed."""

from __future__ import annotations

import enum
import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from .. import lazy_errors as errors
from .settings import ENV_DATABASE_RETRY_SECONDS, ENV_DATABASE_URL

__all__ = [
    "ENV_DATABASE_URL",
    "Link",
    "database_error",
    "describe",
    "link_failure",
    "mark_link",
    "unreachable",
]

# Seconds a client is told to wait before asking again (a server's `Retry-After`) when the
# database cannot be reached for now.
RETRY_AFTER = 1.0


class Link(enum.Enum):
    """What a failure of the database's link says about the transaction that met it."""

    NOT_SENT = "not_sent"  # nothing reached the server (it refused, or was not there): redo it
    UNKNOWN = "unknown"  # the link died mid-transaction: it may have committed


def mark_link(error: errors.DatabaseError, link: Link) -> errors.DatabaseError:
    """`error` met a link failure (`link_failure` reads it back). A server answers such an error
    503 with `Retry-After`, as the database may be back in a moment (`retry_after`)."""
    error.link = link  # type: ignore[attr-defined]
    error.retry_after = RETRY_AFTER  # type: ignore[attr-defined]
    return error


def link_failure(error: BaseException) -> Link | None:
    """How `error` left the link to the database; None if it is no link failure."""
    link = getattr(error, "link", None)
    return link if isinstance(link, Link) else None


def unreachable(url: str, problem: str, seconds: float, tries: int) -> errors.DatabaseError:
    """The database stayed unreachable past the retry bound: what to do, and that the run
    resumes by its id."""
    where = describe(url)
    error = errors.DatabaseError(
        f"cannot reach the {where} ({problem}); tried {tries} times over {seconds:g} s "
        f"({ENV_DATABASE_RETRY_SECONDS}). Start it or check that it is reachable, or raise "
        f"{ENV_DATABASE_RETRY_SECONDS} to wait longer. Every step committed before this one is "
        "kept: run the same run id again to resume.",
        database=where,
        problem=problem,
    )
    return mark_link(error, Link.NOT_SENT)


def describe(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite database {parsed.database}"
    return f"database {parsed.render_as_string(hide_password=True)}"


def _writable_place(url: str) -> bool:
    """False when a SQLite file, or the directory it would be created in, cannot be written."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return True
    path = Path(parsed.database)
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK) and not _read_only_mount(target)


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def database_error(exc: BaseException, url: str) -> errors.DatabaseError:
    """Turn a driver error into one that says what to do."""
    text = str(getattr(exc, "orig", exc) or exc)
    where = describe(url)
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered or "file is encrypted" in lowered:
        hint = (
            "it is not a SQLite database or it is corrupt. Move the file aside (keep it: its "
            f"runs may be recoverable with the sqlite3 .recover command) or set {ENV_DATABASE_URL} "
            "to another file"
        )
    elif "disk is full" in lowered or "no space left" in lowered or "disk full" in lowered:
        hint = (
            "the disk is full. Every step committed before this one is kept: free some space "
            "and run again with the same run id to resume"
        )
    elif (
        "readonly" in lowered
        or "read-only" in lowered
        or "permission denied" in lowered
        or ("unable to open" in lowered and not _writable_place(url))
    ):
        hint = f"it is not writable. Fix its permissions or set {ENV_DATABASE_URL} elsewhere"
    elif "unable to open" in lowered:
        hint = f"it cannot be opened. Check the path, or set {ENV_DATABASE_URL}"
    elif isinstance(exc, OperationalError) and "locked" in lowered:
        hint = "another process held it locked too long. Retry; if it persists, find that process"
    else:
        hint = f"check that it is reachable, or set {ENV_DATABASE_URL}"
    return errors.DatabaseError(
        f"cannot use the {where}: {text}. {hint}.", database=where, problem=text
    )
