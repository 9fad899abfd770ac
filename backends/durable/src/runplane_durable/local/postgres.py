"""PostgreSQL transactions: the `sql.py` functions over asyncpg, one bounded pool per event loop.

asyncpg connections, and SQLAlchemy's async pool and first-connect lock, belong to the event
loop that made them: shared across loops (two threads each calling `run_sync`), a waiter on one
loop is never woken by the other and hangs. So each loop gets its own engine and pool, made on
first use and dropped when the loop closes. A run borrows a connection for one transaction, so a
thousand concurrent runs share `pool_size` connections and wait their turn for one, instead of
each opening its own until the server refuses more clients. Every wait has a bound: `timeout`
for a connection and for each statement, `retry_seconds` for a server that cannot be reached
(restarting, refusing clients for now), whose transactions are made again meanwhile (see
`PostgresTransactions`). A loop's connections are closed when the loop shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from .. import lazy_errors as errors
from . import sql
from .failures import Link, database_error, describe, link_failure, mark_link, unreachable
from .pg_steps import STEPS
from .settings import ENV_DATABASE_RETRY_SECONDS, ENV_DB_POOL_SIZE, StoreSettings
from .transactions import MUST_WAIT, MustWait

__all__ = ["PostgresDatabase", "PostgresTransactions", "schema_lock"]

T = TypeVar("T")
log = logging.getLogger("runplane_durable")

# Any constant shared by every runplane process: the key of the advisory lock that makes
# concurrent schema creators take turns.
_SCHEMA_LOCK_KEY = 0x72756E706C616E65  # "runplane"
_CONNECT_TIMEOUT = 30.0  # seconds for the server to accept a connection (at most `timeout`)
# The server refuses a connection for now, or ended it: too many clients, starting up, shutting
# down (fast or immediate: a restart), crashed.
_TRY_AGAIN = frozenset({"53300", "57P03", "57P01", "57P02"})


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
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._unreachable = False  # said so; said again once it answers

    def waiting(self, problem: str) -> None:
        """Say once, until it answers again, that the database is being waited for."""
        if not self._unreachable:
            self._unreachable = True
            log.warning(
                "the %s cannot be reached (%s); retrying for up to %g s (%s)",
                describe(self.url),
                problem,
                self.settings.retry_seconds,
                ENV_DATABASE_RETRY_SECONDS,
            )

    def answered(self) -> None:
        if self._unreachable:
            self._unreachable = False
            log.warning("the %s answers again; runs go on", describe(self.url))

    def engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        with self._lock:
            engine = self._engines.get(loop)
            if engine is None:
                self._forget_closed_loops()
                engine = self._engines[loop] = self._create_engine()
                self._close_with_loop(loop, engine)
            return engine

    def _close_with_loop(self, loop: asyncio.AbstractEventLoop, engine: AsyncEngine) -> None:
        """Close the engine's connections when its loop shuts down, while it still runs.

        A loop's connections can only be closed on that loop; one closed with them open (each
        `asyncio.run` of a program or a test, an engine disposed from another loop afterwards)
        leaves them to the garbage collector, which warns of each ("unclosed connection").
        `asyncio.run` and every loop runner close their loop's async generators before closing
        it (`shutdown_asyncgens`): this one, started here so that the loop tracks it, is one.
        """

        async def closer() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                with self._lock:
                    if self._engines.get(loop) is engine:
                        del self._engines[loop]
                    self._closers.pop(loop, None)
                await engine.dispose()

        generator = closer()
        with contextlib.suppress(StopIteration):  # runs to its `yield`, tracked by the loop
            generator.__anext__().send(None)
        self._closers[loop] = generator

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
            self._closers.pop(loop, None)

    def transactions(self) -> PostgresTransactions:
        return PostgresTransactions(self)

    async def dispose(self) -> None:
        """Close this loop's connections; forget the engines of other loops."""
        loop = asyncio.get_running_loop()
        with self._lock:
            engines, self._engines = dict(self._engines), weakref.WeakKeyDictionary()
            self._closers = weakref.WeakKeyDictionary()
        for owner, engine in engines.items():
            if owner is loop:
                await engine.dispose()
            # another loop's connections can only be closed on that loop: they are when it
            # shuts down (`_close_with_loop`), or, if it closed already, they were then


class PostgresTransactions:
    """A run session's way to the database: each call borrows a pooled connection.

    A call that meets a link failure (the server restarting, refusing clients for now, or not
    there) is made again, with backoff (0.05 s doubling to 1 s), for up to `retry_seconds`,
    then fails with a DatabaseError saying what to do. A connection found dead in the pool
    (the server restarted while it sat there) is replaced at once, never reported. A write
    whose link died mid-statement may have committed: one of `_NOT_TWICE` is not made again
    here but raised marked `Link.UNKNOWN`, for a caller that can tell (a session's write:
    `LocalWriter` looks it up with `sql.committed`, as a server does for a retried request).
    """

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def call_now(self, fn: Callable[..., T], *args: Any) -> T | MustWait:
        return MUST_WAIT  # every transaction is a network round trip

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        settings = self._db.settings
        deadline = time.monotonic() + settings.retry_seconds
        delay = 0.05
        tries = replaced = 0
        while True:
            tries += 1
            try:
                result = await self._call_once(fn, args)
            except errors.DatabaseError as exc:
                link = link_failure(exc)
                if link is None or (link is Link.UNKNOWN and fn in _NOT_TWICE):
                    raise
                if isinstance(exc.__cause__, _Invalidated) and replaced <= settings.pool_size:
                    replaced += 1  # died idle in the pool; the next one may be alive
                    continue
                problem = exc.problem or str(exc)
                if time.monotonic() + delay > deadline:
                    raise unreachable(self._db.url, problem, settings.retry_seconds, tries) from exc
                self._db.waiting(problem)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if tries > 1:
                self._db.answered()
            return result

    async def _step(
        self, engine: AsyncEngine, step: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> Any:
        """A one-statement step on the pooled connection's asyncpg driver (see pg_steps.py)."""
        import asyncpg  # type: ignore[import-untyped]

        pooled = await self._connect(engine, raw=True)
        driver = pooled.driver_connection
        if driver.is_closed():
            await _discard_raw(pooled)
            raise self._died_idle()
        try:
            result = await step(driver, *args)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
            TimeoutError,
        ) as exc:
            # Read before discarding it: discarding closes it, and a statement the server
            # refused (a unique key, a read-only transaction) is an answer, not a lost link.
            closed = driver.is_closed()
            await _discard_raw(pooled)
            error = database_error(exc, self._db.url)
            if _link_lost(exc) or closed:  # it may have committed
                mark_link(error, Link.UNKNOWN)
            raise error from exc
        except BaseException:  # cut off mid-statement (cancelled): do not reuse it
            await _discard_raw(pooled)
            raise
        await greenlet_spawn(pooled.close)
        return result

    def _died_idle(self) -> errors.DatabaseError:
        """A pooled connection the server had ended while it sat idle: nothing was sent."""
        error = errors.DatabaseError(
            f"a pooled connection to the {describe(self._db.url)} had been closed by the server",
            database=describe(self._db.url),
            problem="connection closed while idle",
        )
        mark_link(error, Link.NOT_SENT).__cause__ = _Invalidated()
        return error

    def _starved(self) -> errors.DatabaseError:
        return errors.DatabaseError(
            f"waited {self._db.settings.timeout:g} s for a free connection to the "
            f"{describe(self._db.url)} ({self._db.settings.pool_size} per event loop) and "
            f"gave up; nothing was written. Raise {ENV_DB_POOL_SIZE} if the server allows "
            "more clients.",
            database=describe(self._db.url),
        )

    async def _connect(self, engine: AsyncEngine, *, raw: bool = False) -> Any:
        """A pooled connection, or a DatabaseError; one the server refused or that could not
        be made (it is restarting, at its connection limit, or not there) is marked
        `Link.NOT_SENT`: nothing was sent, so the call may be made again."""
        import asyncpg

        try:
            return await (engine.raw_connection() if raw else engine.connect())
        except PoolTimeout as exc:
            raise self._starved() from exc
        except (
            DBAPIError,
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            *_driver_errors(engine),
        ) as exc:  # `raw_connection` lets the driver's own errors through, unwrapped
            error = database_error(exc, self._db.url)
            if _link_lost(exc):
                mark_link(error, Link.NOT_SENT)
            raise error from exc

    async def _call_once(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        engine = self._db.engine()
        step = STEPS.get(fn)
        if step is not None:
            return cast(T, await self._step(engine, step, args))
        conn = await self._connect(engine)
        if (await conn.get_raw_connection()).driver_connection.is_closed():
            await _discard(conn)
            raise self._died_idle()
        try:
            result = cast(T, await conn.run_sync(fn, *args))
        except (DBAPIError, OSError, TimeoutError) as exc:
            await _discard(conn)
            error = database_error(exc, self._db.url)
            if _link_lost(exc) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
                mark_link(error, Link.UNKNOWN)
            raise error from exc
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


# Writes whose second application would not answer as the first did (a step's journal entry
# or events would collide with their own; an outcome's fence finds the lease given up; a task
# settled finds its attempt over; a cancel would log its request twice): made again only by a
# caller that first looks whether they committed.
_NOT_TWICE: frozenset[Callable[..., Any]] = frozenset(
    {sql.append, sql.finish, sql.complete_task, sql.fail_task, sql.cancel_run}
)


def _link_lost(exc: BaseException) -> bool:
    """Whether `exc` says the link to the server failed (not what a statement did): no route
    or connection, the server shutting down or starting up, or at its client limit. Read on
    the error, SQLAlchemy's wrapped driver error, and what they were raised from."""
    seen: list[BaseException] = []
    for error in (exc, getattr(exc, "orig", None), exc.__cause__):
        if isinstance(error, BaseException) and error not in seen:
            seen += [error, *([error.__cause__] if error.__cause__ is not None else [])]
    for error in seen:
        if isinstance(error, (OSError, TimeoutError)):
            return True
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and (state in _TRY_AGAIN or state.startswith("08")):
            return True
        text = str(error)
        if type(error).__name__ == "InterfaceError" and "connection is closed" in text:
            return True
        if "connection was closed in the middle of operation" in text:
            return True
    return False


def _driver_errors(engine: AsyncEngine) -> tuple[type[BaseException], ...]:
    """The dialect's DB-API base error (SQLAlchemy's asyncpg adapter raises it unwrapped from
    `raw_connection` when connecting fails)."""
    error = getattr(engine.dialect.dbapi, "Error", None)
    return (error,) if isinstance(error, type) and issubclass(error, BaseException) else ()


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
