"""SQLite transactions: on the event loop's thread when they cannot wait, in a worker when they may.

A step's write is a fraction of a millisecond of SQLite work. Handing it to a thread costs more
than that: a wake-up, then the GIL passed back and forth while the loop is busy with the SDK.
So the hot-path transactions (`INLINE`) run on the loop's own thread with a busy timeout of 0:
if another process is writing, SQLite says so at once, before anything is written, and the
transaction runs again in the session's worker thread, which waits for the lock. Whatever may
wait or take long runs in the worker: connecting, opening a run, reads, and the WAL checkpoints,
which are run here (SQLite's automatic ones would write and fsync on the loop's thread).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from . import sql
from .failures import database_error, describe
from .transactions import MUST_WAIT, MustWait

__all__ = ["CHECKPOINT_EVERY", "INLINE", "SqliteDatabase", "SqliteTransactions"]

log = logging.getLogger("runplane_durable")
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 10_000
_SQLITE_BUSY = 5  # primary result code; BUSY_SNAPSHOT and friends share it
CHECKPOINT_EVERY = 100  # writes of this process between two WAL checkpoints

# Each is one transaction whose first statement writes: a busy database refuses it before it has
# done anything, so it can run again, whole, in the worker.
INLINE: frozenset[Callable[..., Any]] = frozenset(
    {sql.append, sql.heartbeat, sql.finish, sql.release}
)


class _Busy(Exception):
    """Another connection holds the write lock; nothing was written."""


def _is_busy(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF == _SQLITE_BUSY
    return "database is locked" in str(exc.orig)


class _CheckpointClock:
    """A process's first write, and every `CHECKPOINT_EVERY`-th after it, checkpoints the WAL.

    The first one folds back what earlier processes left in the WAL; the others bound its growth
    to about `CHECKPOINT_EVERY` steps of this process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes = 0

    def due(self) -> bool:
        with self._lock:
            due = self._writes % CHECKPOINT_EVERY == 0
            self._writes += 1
            return due


class SqliteTransactions:
    """One connection, and the worker thread that owns it whenever a transaction may wait.

    Calls never overlap (a run session makes one at a time), so the connection is used by one
    thread at a time. After a session, thread and connection go back to the database's idle pool:
    neither is bound to an event loop, and the next run pays no thread start or connect.
    """

    def __init__(self, owner: SqliteDatabase) -> None:
        self._db = owner
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runplane-sqlite")
        self._conn: Connection | None = None
        self._in_call = False  # a transaction is running in the worker
        self._checkpoint_due = False

    def call_now(self, fn: Callable[..., T], *args: Any) -> T | MustWait:
        if fn not in INLINE or self._conn is None or self._in_call:
            return MUST_WAIT
        if self._checkpoint_due or self._db.clock.due():
            self._checkpoint_due = True  # `call` runs it, and the checkpoint, in the worker
            return MUST_WAIT
        try:
            return self._inline(fn, args)
        except _Busy:
            return MUST_WAIT  # another process is writing: wait for it in the worker, not here

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._in_call:
            raise RuntimeError("a SqliteTransactions runs one transaction at a time")
        outcome = self.call_now(fn, *args)
        if not isinstance(outcome, MustWait):
            return outcome
        self._in_call = True
        try:
            checkpoint, self._checkpoint_due = self._checkpoint_due, False
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._in_worker, fn, args, checkpoint)
        finally:
            self._in_call = False

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        assert self._conn is not None
        try:
            return fn(self._conn, *args)
        except BaseException:
            self._rollback()
            raise

    def _inline(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return self._run(fn, args)
        except DBAPIError as exc:
            if _is_busy(exc):
                raise _Busy from exc
            raise database_error(exc, self._db.url) from exc

    def _in_worker(self, fn: Callable[..., T], args: tuple[Any, ...], checkpoint: bool) -> T:
        try:
            if self._conn is None:
                self._conn = self._db.engine.connect()
            self._busy_timeout(SQLITE_BUSY_TIMEOUT_MS)
            try:
                result = self._run(fn, args)
            finally:
                self._busy_timeout(0)
        except DBAPIError as exc:
            raise database_error(exc, self._db.url) from exc
        if checkpoint:
            self._checkpoint()
        return result

    def _driver(self) -> sqlite3.Connection:
        assert self._conn is not None
        driver = self._conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        return driver

    def _busy_timeout(self, ms: int) -> None:
        if self._conn is not None:  # None: invalidated by a failed rollback
            self._driver().execute(f"PRAGMA busy_timeout={ms}")

    def _checkpoint(self) -> None:
        """PASSIVE: copies what it can without waiting for readers or writers."""
        try:
            self._driver().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:  # the WAL keeps everything; the next checkpoint catches up
            log.warning("WAL checkpoint of the %s failed", describe(self._db.url), exc_info=True)

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            try:
                self._conn.rollback()
            except DBAPIError:
                self._conn.invalidate()
                self._conn = None

    def _reusable(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.closed and not conn.in_transaction()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        if self._reusable() and self._db.idle.put(self):
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
        self._idle: list[SqliteTransactions] = []

    def get(self) -> SqliteTransactions | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def put(self, tx: SqliteTransactions) -> bool:
        with self._lock:
            if len(self._idle) >= self.MAX_IDLE:
                return False
            self._idle.append(tx)
            return True

    def drain(self) -> list[SqliteTransactions]:
        with self._lock:
            idle, self._idle = self._idle, []
            return idle


class SqliteDatabase:
    """What every connection to one SQLite file shares in this process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.idle = _IdlePool()
        self.clock = _CheckpointClock()
        # check_same_thread=False: a connection is opened in its worker and also used on the
        # loop's thread, never by both at once.
        self.engine = sa.create_engine(
            url, poolclass=NullPool, connect_args={"check_same_thread": False}
        )
        event.listen(self.engine, "connect", _sqlite_pragmas)

    def transactions(self) -> SqliteTransactions:
        return self.idle.get() or SqliteTransactions(self)

    def dispose(self) -> None:
        for tx in self.idle.drain():
            tx.shutdown()
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (CLI, server) work while a run writes; synchronous=NORMAL keeps every
    # committed step across a process crash (kill -9), which is what durability promises here.
    # Connecting may wait for another writer; the transactions set their own timeout after.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in a worker (see above)
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()
