"""Opening the run database: where it is, how it is configured, and whether we can use it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ..errors import DatabaseError, SchemaVersionError
from .schema import SCHEMA_VERSION, metadata, schema_info

__all__ = ["DEFAULT_DIR", "ENV_DATABASE_URL", "create_engine", "ensure_schema", "resolve_url"]

ENV_DATABASE_URL = "RUNPLANE_DATABASE_URL"
DEFAULT_DIR = ".runplane"
DEFAULT_FILE = "runplane.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def resolve_url(url: str | None = None) -> str:
    """An async SQLAlchemy URL from an explicit URL, RUNPLANE_DATABASE_URL or the default.

    Accepts a plain file path, `sqlite:///...`, or `postgresql://...` / `postgres://...`, and picks
    the async driver (aiosqlite, asyncpg) itself, so users write the URLs they already know.
    """
    raw = url or os.environ.get(ENV_DATABASE_URL) or ""
    if not raw:
        path = Path.cwd() / DEFAULT_DIR / DEFAULT_FILE
        return f"sqlite+aiosqlite:///{path}"
    if "://" not in raw:
        return f"sqlite+aiosqlite:///{Path(raw).expanduser().resolve()}"
    scheme, rest = raw.split("://", 1)
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    raise DatabaseError(
        f"{ENV_DATABASE_URL}={_redact(raw)!r} names a database runplane-durable does not support; "
        "use a file path, sqlite:///PATH or postgresql://USER@HOST/DB."
    )


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def create_engine(url: str) -> AsyncEngine:
    """An engine whose connections are opened per run (NullPool).

    Runs may execute on different event loops (each `run_sync` has its own), and a pooled async
    connection must never cross loops; one connection per run costs well under a millisecond.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database or "")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the directory {path.parent} for the run database: {exc}. Set "
                f"{ENV_DATABASE_URL} to a writable location."
            ) from exc
    engine = create_async_engine(url, poolclass=NullPool)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (CLI, server) work while a run writes; synchronous=NORMAL keeps every
    # committed step across a process crash (kill -9), which is what durability promises here.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def describe(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite database {parsed.database}"
    return f"database {parsed.render_as_string(hide_password=True)}"


async def ensure_schema(conn: AsyncConnection, url: str) -> None:
    """Create the schema on first use; refuse a schema written by a newer version."""
    try:
        await conn.run_sync(metadata.create_all, checkfirst=True)
        version = (await conn.execute(sa.select(schema_info.c.version))).scalar_one_or_none()
        if version is None:
            await conn.execute(schema_info.insert().values(id=1, version=SCHEMA_VERSION))
        await conn.commit()
    except DBAPIError as exc:
        await conn.rollback()
        raise database_error(exc, url) from exc
    if version is not None and version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the {describe(url)} has schema version {version}, written by a newer "
            f"runplane-durable (this one understands up to {SCHEMA_VERSION}). Upgrade "
            "runplane-durable (`pip install -U runplane-durable`); the runs in it are untouched."
        )


def database_error(exc: BaseException, url: str) -> DatabaseError:
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
    elif "readonly" in lowered or "read-only" in lowered or "permission denied" in lowered:
        hint = f"it is not writable. Fix its permissions or set {ENV_DATABASE_URL} elsewhere"
    elif "unable to open" in lowered:
        hint = f"it cannot be opened. Check the path, or set {ENV_DATABASE_URL}"
    elif isinstance(exc, OperationalError) and "locked" in lowered:
        hint = (
            "another process held it locked for too long. Retry; if it persists, find that process"
        )
    else:
        hint = f"check that it is reachable, or set {ENV_DATABASE_URL}"
    return DatabaseError(f"cannot use the {where}: {text}. {hint}.")
