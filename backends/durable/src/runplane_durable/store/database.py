"""Opening the run database: where it is, how it is configured, and how transactions run.

Transactions are the synchronous functions in `sql.py`. On SQLite they run on the stdlib driver,
on the event loop's thread or in a worker (see `sqlite.py`; an async driver would hop threads
once per cursor operation, about ten times per step); on PostgreSQL each runs through
`AsyncConnection.run_sync` on asyncpg.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ..errors import DatabaseError, SchemaVersionError
from . import sql
from .failures import ENV_DATABASE_URL, database_error, describe
from .schema import SCHEMA_VERSION
from .sqlite import SqliteDatabase
from .transactions import MUST_WAIT, MustWait, Transactions

__all__ = [
    "DEFAULT_DIR",
    "ENV_DATABASE_URL",
    "Database",
    "Transactions",
    "describe",
    "resolve_url",
]

DEFAULT_DIR = ".runplane"
DEFAULT_FILE = "runplane.db"
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


class _AsyncTransactions:
    """PostgreSQL: the same functions over asyncpg, via SQLAlchemy's run_sync bridge."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self._engine = engine
        self._url = url
        self._conn: AsyncConnection | None = None

    def call_now(self, fn: Callable[..., T], *args: Any) -> T | MustWait:
        return MUST_WAIT  # every transaction is a network round trip

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
        self._sqlite: SqliteDatabase | None = None
        self._async_engine: AsyncEngine | None = None
        self._schema_checked = False
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
            if self._sqlite is None:
                self._sqlite = SqliteDatabase(self.url)
            return self._sqlite.transactions()
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
        if self._sqlite is not None:
            self._sqlite.dispose()
            self._sqlite = None
        if self._async_engine is not None:
            await self._async_engine.dispose()
            self._async_engine = None
