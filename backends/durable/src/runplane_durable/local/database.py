"""Opening the run database: where it is, how it is configured, and how transactions run.

Transactions are the synchronous functions in `sql.py`. On SQLite they run on the stdlib driver,
on the event loop's thread or in a worker (see `sqlite.py`; an async driver would hop threads
once per cursor operation, about ten times per step); on PostgreSQL each runs through
`AsyncConnection.run_sync` on asyncpg, on a pool of the running event loop (see `postgres.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import make_url

from .. import lazy_errors as errors
from . import sql, sqlite
from .failures import ENV_DATABASE_URL, describe
from .location import DEFAULT_DIR, DEFAULT_FILE, Location, locate
from .schema import SCHEMA_VERSION
from .settings import StoreSettings
from .sqlite import SqliteDatabase
from .transactions import Transactions

if TYPE_CHECKING:  # imported on first use: SQLite users (and `runs list`) skip asyncpg's stack
    from .postgres import PostgresDatabase

__all__ = [
    "DEFAULT_DIR",
    "DEFAULT_FILE",
    "ENV_DATABASE_URL",
    "Database",
    "Location",
    "StoreSettings",
    "Transactions",
    "describe",
    "locate",
    "resolve_url",
]

T = TypeVar("T")


def resolve_url(url: str | None = None) -> str:
    """A SQLAlchemy URL from an explicit URL, RUNPLANE_DATABASE_URL or the nearest `.runplane/`
    (see `location.py`)."""
    return locate(url).url


class Database:
    """A run database: its dialect's connections, and a schema known to be one this version may
    use before anything is written to it.

    `read_only=True` opens an existing database to read it, for commands that only look: it
    never creates the file, its directory or the schema, never switches SQLite to WAL, and its
    connections refuse to write; it still reads a database another process is writing.
    """

    def __init__(
        self, url: str, settings: StoreSettings | None = None, *, read_only: bool = False
    ) -> None:
        self.url = url
        self.settings = settings if settings is not None else StoreSettings.from_env()
        self.read_only = read_only
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._sqlite: SqliteDatabase | None = None
        self._postgres: PostgresDatabase | None = None
        self._schema_checked = False
        if self.is_sqlite and parsed.database not in (None, "", ":memory:") and not read_only:
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
                self._sqlite = SqliteDatabase(self.url, self.settings, read_only=self.read_only)
            return self._sqlite.transactions()
        if self._postgres is None:
            from .postgres import PostgresDatabase

            self._postgres = PostgresDatabase(self.url, self.settings, read_only=self.read_only)
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
        version = await tx.call(sql.schema_version)
        self._refuse_newer(version)
        if self.read_only:
            if version is None:
                raise errors.DatabaseError(
                    f"the {describe(self.url)} holds no runplane runs (it has no runplane "
                    "tables); nothing was written to it. Check that it is the database your "
                    f"programs use (--db, {ENV_DATABASE_URL}).",
                    database=describe(self.url),
                )
            return
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
                database=describe(self.url), found=version, supported=SCHEMA_VERSION
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
