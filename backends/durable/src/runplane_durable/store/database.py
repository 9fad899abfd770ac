"""Opening the run database: where it is, how it is configured, and how transactions run.

Transactions are the synchronous functions in `sql.py`. On SQLite they run on the stdlib driver,
on the event loop's thread or in a worker (see `sqlite.py`; an async driver would hop threads
once per cursor operation, about ten times per step); on PostgreSQL each runs through
`AsyncConnection.run_sync` on asyncpg, on a pool of the running event loop (see `postgres.py`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .. import lazy_errors as errors
from . import sql, sqlite
from .failures import ENV_DATABASE_URL, describe
from .schema import SCHEMA_VERSION
from .settings import StoreSettings
from .sqlite import SqliteDatabase
from .transactions import Transactions

if TYPE_CHECKING:  # imported on first use: SQLite users (and `runs list`) skip asyncpg's stack
    from .postgres import PostgresDatabase

__all__ = [
    "DEFAULT_DIR",
    "ENV_DATABASE_URL",
    "Database",
    "StoreSettings",
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
    raise errors.DatabaseError(
        f"{ENV_DATABASE_URL}={_redact(raw)!r} names a database runplane-durable does not support; "
        "use a file path, sqlite:///PATH or postgresql://USER@HOST/DB."
    )


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class Database:
    """A run database: its dialect's connections, and a schema known to be one this version may
    use before anything is written to it."""

    def __init__(self, url: str, settings: StoreSettings | None = None) -> None:
        self.url = url
        self.settings = settings if settings is not None else StoreSettings.from_env()
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._sqlite: SqliteDatabase | None = None
        self._postgres: PostgresDatabase | None = None
        self._schema_checked = False
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database or "")
            if not path.name.startswith("file:"):
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise errors.DatabaseError(
                        f"cannot create the directory {path.parent} for the run database: "
                        f"{exc}. Set {ENV_DATABASE_URL} to a writable location."
                    ) from exc

    def _transactions(self) -> Transactions:
        if self.is_sqlite:
            if self._sqlite is None:
                self._sqlite = SqliteDatabase(self.url, self.settings)
            return self._sqlite.transactions()
        if self._postgres is None:
            from .postgres import PostgresDatabase

            self._postgres = PostgresDatabase(self.url, self.settings)
        return self._postgres.transactions()

    async def transactions(self) -> Transactions:
        """A way to run transactions, on a database whose schema is known to be usable."""
        tx = self._transactions()
        if not self._schema_checked:
            await self._check_schema(tx)
            self._schema_checked = True
        return tx

    async def _check_schema(self, tx: Transactions) -> None:
        """Refuse a newer database before writing anything to it; then create what is missing.

        Creation runs under a lock the database keeps (SQLite's write lock, a PostgreSQL
        advisory lock), so processes starting at once on a new database take turns.
        """
        self._refuse_newer(await tx.call(sql.schema_version))
        if self.is_sqlite:
            await tx.call(sqlite.enable_wal)
        if self.is_sqlite:
            lock = sqlite.schema_lock
        else:
            from .postgres import schema_lock as lock
        self._refuse_newer(await tx.call(sql.create_schema, lock))

    def _refuse_newer(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise errors.SchemaVersionError(
                f"the {describe(self.url)} has schema version {version}, written by a newer "
                f"runplane-durable (this one understands up to {SCHEMA_VERSION}). Upgrade "
                "runplane-durable (`pip install -U runplane-durable`); nothing was written to it."
            )

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """One transaction (for reads outside a run)."""
        tx = await self.transactions()
        try:
            return await tx.call(fn, *args)
        finally:
            await tx.close()

    async def dispose(self) -> None:
        if self._sqlite is not None:
            self._sqlite.dispose()
            self._sqlite = None
        if self._postgres is not None:
            await self._postgres.dispose()
            self._postgres = None
