"""PostgreSQL transactions: the `sql.py` functions over asyncpg, one bounded pool per event loop.

asyncpg connections, and SQLAlchemy's async pool and first-connect lock, belong to the event
loop that made them: shared across loops (two threads each calling `run_sync`), a waiter on one
loop is never woken by the other and hangs. So each loop gets its own engine and pool, made on
first use and dropped when the loop closes. A run borrows a connection for one transaction, so a
thousand concurrent runs share `pool_size` connections and wait their turn for one, instead of
each opening its own until the server refuses more clients. Every wait has a bound (`timeout`):
for a connection, for the server to accept one, and for each statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from .. import lazy_errors as errors
from .failures import database_error, describe
from .pg_steps import STEPS
from .settings import ENV_DB_POOL_SIZE, StoreSettings
from .transactions import MUST_WAIT, MustWait

__all__ = ["PostgresDatabase", "PostgresTransactions", "schema_lock"]

T = TypeVar("T")

# Any constant shared by every runplane process: the key of the advisory lock that makes
# concurrent schema creators take turns.
_SCHEMA_LOCK_KEY = 0x72756E706C616E65  # "runplane"
_CONNECT_TIMEOUT = 30.0  # seconds for the server to accept a connection (at most `timeout`)
# The server refuses a connection for now: too many clients, starting up, shutting down.
_TRY_AGAIN = frozenset({"53300", "57P03", "57P01"})


def schema_lock(conn: Connection) -> None:
    """Concurrent creators of the schema take turns (released when the transaction ends)."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))


class PostgresDatabase:
    """One database URL: an engine, and so a pool, for each event loop that uses it."""

    def __init__(self, url: str, settings: StoreSettings, *, read_only: bool = False) -> None:
        self.url = url
        self.settings = settings
        self.read_only = read_only
        self._engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        with self._lock:
            engine = self._engines.get(loop)
            if engine is None:
                self._forget_closed_loops()
                engine = self._engines[loop] = self._create_engine()
            return engine

    def _create_engine(self) -> AsyncEngine:
        settings = self.settings
        server_settings = {"application_name": "runplane-durable"}
        if settings.durability == "full":
            server_settings["synchronous_commit"] = "on"  # whatever the server's default
        if self.read_only:  # the server refuses every write of these connections
            server_settings["default_transaction_read_only"] = "on"
        return create_async_engine(
            self.url,
            pool_size=settings.pool_size,
            max_overflow=0,
            pool_timeout=settings.timeout,
            connect_args={
                "timeout": min(_CONNECT_TIMEOUT, settings.timeout),
                "command_timeout": settings.timeout,
                "server_settings": server_settings,
            },
        )

    def _forget_closed_loops(self) -> None:
        """An engine whose loop has closed can never be used again; its connections went with
        the loop. (Its values hold their loop alive, so the weak keys alone never let go.)"""
        for loop in [loop for loop in self._engines if loop.is_closed()]:
            del self._engines[loop]

    def transactions(self) -> PostgresTransactions:
        return PostgresTransactions(self)

    async def dispose(self) -> None:
        """Close this loop's connections; forget the engines of other loops."""
        loop = asyncio.get_running_loop()
        with self._lock:
            engines, self._engines = dict(self._engines), weakref.WeakKeyDictionary()
        for owner, engine in engines.items():
            if owner is loop:
                await engine.dispose()
            # another loop's connections can only be closed on that loop: they go with it


class PostgresTransactions:
    """A run session's way to the database: each call borrows a pooled connection."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def call_now(self, fn: Callable[..., T], *args: Any) -> T | MustWait:
        return MUST_WAIT  # every transaction is a network round trip

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._call_once(fn, args)
        except errors.DatabaseError as exc:
            cause = exc.__cause__
            died = isinstance(cause, _Invalidated) or (
                isinstance(cause, DBAPIError) and cause.connection_invalidated
            )
            if not died:
                raise
        # The connection had died while idle in the pool (a server restart, an idle timeout):
        # once, on a new one. Safe for every transaction here: a write whose commit did reach
        # the server before the link died is refused the second time by the journal's keys.
        return await self._call_once(fn, args)

    async def _step(
        self, engine: AsyncEngine, step: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> Any:
        """A one-statement step on the pooled connection's asyncpg driver (see pg_steps.py)."""
        import asyncpg  # type: ignore[import-untyped]

        try:
            pooled = await self._connect(engine, raw=True)
        except PoolTimeout as exc:
            raise self._starved() from exc
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise database_error(exc, self._db.url) from exc
        try:
            result = await step(pooled.driver_connection, *args)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
            TimeoutError,
        ) as exc:
            await _discard_raw(pooled)
            error = database_error(exc, self._db.url)
            # The link is gone or in a state no statement can use (the server ended it while
            # it sat in the pool): the step never ran, so it may run again on a new one.
            dead = (
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                asyncpg.ConnectionDoesNotExistError,
            )
            if isinstance(exc, dead):
                raise error from _Invalidated(exc)
            raise error from exc
        except BaseException:  # cut off mid-statement (cancelled): do not reuse it
            await _discard_raw(pooled)
            raise
        await greenlet_spawn(pooled.close)
        return result

    def _starved(self) -> errors.DatabaseError:
        return errors.DatabaseError(
            f"waited {self._db.settings.timeout:g} s for a free connection to the "
            f"{describe(self._db.url)} ({self._db.settings.pool_size} per event loop) and "
            f"gave up; nothing was written. Raise {ENV_DB_POOL_SIZE} if the server allows "
            "more clients.",
            database=describe(self._db.url),
        )

    async def _connect(self, engine: AsyncEngine, *, raw: bool = False) -> Any:
        """A pooled connection; while the server refuses new clients for now (its connection
        limit, or it is starting up after a restart), wait for it within the timeout."""
        deadline = time.monotonic() + self._db.settings.timeout
        delay = 0.01
        while True:
            try:
                return await (engine.raw_connection() if raw else engine.connect())
            except DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None)
                if state not in _TRY_AGAIN or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _call_once(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        engine = self._db.engine()
        step = STEPS.get(fn)
        if step is not None:
            return cast(T, await self._step(engine, step, args))
        try:
            conn = await self._connect(engine)
        except PoolTimeout as exc:
            raise self._starved() from exc
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise database_error(exc, self._db.url) from exc
        try:
            result = cast(T, await conn.run_sync(fn, *args))
        except (DBAPIError, OSError, TimeoutError) as exc:
            await _discard(conn)
            raise database_error(exc, self._db.url) from exc
        except (
            errors.DurableError
        ):  # the transaction refused (RunLeasedError, ...): the link is fine
            await _rollback(conn)
            raise
        except BaseException:  # cut off mid-statement (cancelled) or unknown: do not reuse it
            await _discard(conn)
            raise
        await conn.close()
        return result

    async def close(self) -> None:
        """Nothing to give back: connections return to the pool after each transaction."""


class _Invalidated(Exception):
    """The cause of a step's failure when its connection was found dead."""


async def _discard_raw(pooled: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(greenlet_spawn(pooled.invalidate))


async def _rollback(conn: AsyncConnection) -> None:
    try:
        await asyncio.shield(conn.rollback())
    except (DBAPIError, OSError, TimeoutError):
        await _discard(conn)
        return
    await asyncio.shield(conn.close())


async def _discard(conn: AsyncConnection) -> None:
    """A transaction that failed or was cut off leaves its connection in a state nobody should
    inherit: it is closed instead of going back to the pool."""
    try:
        await asyncio.shield(conn.invalidate())
    except Exception:  # it is being thrown away: nothing it says matters
        pass
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(conn.close())
