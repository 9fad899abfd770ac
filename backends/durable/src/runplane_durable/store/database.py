"""Opening the run database: where it is, how it is configured, and how transactions run.

Transactions are the synchronous functions in `sql.py`. On SQLite each runs whole in one hop to
a dedicated thread on the stdlib driver (an async driver would hop once per cursor operation,
about ten times per step); on PostgreSQL each runs through `AsyncConnection.run_sync` on asyncpg.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ..errors import DatabaseError, SchemaVersionError
from . import sql
from .schema import SCHEMA_VERSION

__all__ = ["DEFAULT_DIR", "ENV_DATABASE_URL", "Database", "Transactions", "resolve_url"]

ENV_DATABASE_URL = "RUNPLANE_DATABASE_URL"
DEFAULT_DIR = ".runplane"
DEFAULT_FILE = "runplane.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")


def resolve_url(url: str | None = None) -> str:
    """A SQLAlchemy URL from an explicit URL, RUNPLANE_DATABASE_URL or the default.

    Accepts a plain file path, `sqlite:///...`, or `postgresql://...` / `postgres://...` with any
    driver suffix, and picks the driver itself, so users write the URLs they already know.
    """
    raw = url or os.environ.get(ENV_DATABASE_URL) or ""
    if not raw:
        return f"sqlite:///{Path.cwd() / DEFAULT_DIR / DEFAULT_FILE}"
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    scheme, rest = raw.split("://", 1)
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite://{rest}"
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


def describe(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite database {parsed.database}"
    return f"database {parsed.render_as_string(hide_password=True)}"


class Transactions(Protocol):
    """Runs `sql.py` functions on one connection, one transaction at a time."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def close(self) -> None: ...


class _ThreadTransactions:
    """SQLite: a dedicated thread owns the connection; a transaction is one thread hop.

    A thread and its connection are not bound to any event loop, so after a session they go back
    to their database's idle pool for the next one: a run then pays no thread start, connect or
    pragma round.
    """

    def __init__(self, engine: sa.Engine, url: str, idle: _IdlePool) -> None:
        self._engine = engine
        self._url = url
        self._idle = idle
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runplane-sqlite")
        self._conn: Connection | None = None

    def _invoke(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            return fn(self._conn, *args)
        except DBAPIError as exc:
            self._rollback()
            raise database_error(exc, self._url) from exc
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            try:
                self._conn.rollback()
            except DBAPIError:
                self._conn.invalidate()
                self._conn = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._invoke, fn, args)

    def _reusable(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.closed and not conn.in_transaction()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        if self._reusable() and self._idle.put(self):
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=False)

    def shutdown(self) -> None:
        """Close from any thread (the database is being disposed)."""
        self._executor.submit(self._close)
        self._executor.shutdown(wait=False)


class _IdlePool:
    """Idle SQLite workers, newest first; bounded so a burst of runs does not keep threads."""

    MAX_IDLE = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_ThreadTransactions] = []

    def get(self) -> _ThreadTransactions | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def put(self, tx: _ThreadTransactions) -> bool:
        with self._lock:
            if len(self._idle) >= self.MAX_IDLE:
                return False
            self._idle.append(tx)
            return True

    def drain(self) -> list[_ThreadTransactions]:
        with self._lock:
            idle, self._idle = self._idle, []
            return idle


class _AsyncTransactions:
    """PostgreSQL: the same functions over asyncpg, via SQLAlchemy's run_sync bridge."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self._engine = engine
        self._url = url
        self._conn: AsyncConnection | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            if self._conn is None:
                self._conn = await self._engine.connect()
            return await self._conn.run_sync(fn, *args)
        except DBAPIError as exc:
            await self._rollback()
            raise database_error(exc, self._url) from exc
        except OSError as exc:
            await self._rollback()
            raise database_error(exc, self._url) from exc
        except BaseException:
            await self._rollback()
            raise

    async def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            try:
                await asyncio.shield(self._conn.rollback())
            except (DBAPIError, OSError):
                await self._conn.invalidate()
                self._conn = None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()


class Database:
    """A run database. Connections are per session (NullPool): runs may live on different
    event loops (each `run_sync` has its own) and a pooled connection must never cross them."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._sync_engine: sa.Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._schema_checked = False
        self._idle = _IdlePool()
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database or "")
            if not path.name.startswith("file:"):
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise DatabaseError(
                        f"cannot create the directory {path.parent} for the run database: "
                        f"{exc}. Set {ENV_DATABASE_URL} to a writable location."
                    ) from exc

    def _transactions(self) -> Transactions:
        if self.is_sqlite:
            idle = self._idle.get()
            if idle is not None:
                return idle
            if self._sync_engine is None:
                self._sync_engine = sa.create_engine(self.url, poolclass=NullPool)
                event.listen(self._sync_engine, "connect", _sqlite_pragmas)
            return _ThreadTransactions(self._sync_engine, self.url, self._idle)
        if self._async_engine is None:
            self._async_engine = create_async_engine(self.url, poolclass=NullPool)
        return _AsyncTransactions(self._async_engine, self.url)

    async def transactions(self) -> Transactions:
        """A connection for one session, on a database whose schema is known to be usable."""
        tx = self._transactions()
        if not self._schema_checked:
            try:
                version = await tx.call(sql.ensure_schema)
            except BaseException:
                await tx.close()
                raise
            if version is not None and version > SCHEMA_VERSION:
                await tx.close()
                raise SchemaVersionError(
                    f"the {describe(self.url)} has schema version {version}, written by a newer "
                    f"runplane-durable (this one understands up to {SCHEMA_VERSION}). Upgrade "
                    "runplane-durable (`pip install -U runplane-durable`); its runs are untouched."
                )
            self._schema_checked = True
        return tx

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """One transaction on a connection of its own (for reads outside a run)."""
        tx = await self.transactions()
        try:
            return await tx.call(fn, *args)
        finally:
            await tx.close()

    async def dispose(self) -> None:
        for tx in self._idle.drain():
            tx.shutdown()
        if self._async_engine is not None:
            await self._async_engine.dispose()
            self._async_engine = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()
            self._sync_engine = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (CLI, server) work while a run writes; synchronous=NORMAL keeps every
    # committed step across a process crash (kill -9), which is what durability promises here.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


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
        hint = "another process held it locked too long. Retry; if it persists, find that process"
    else:
        hint = f"check that it is reachable, or set {ENV_DATABASE_URL}"
    return DatabaseError(f"cannot use the {where}: {text}. {hint}.")
