"""SQLite transactions: on the event loop's thread when they cannot wait, in a worker when they may.

A step's write is a fraction of a millisecond of SQLite work. Handing it to a thread costs more
than that: a wake-up, then the GIL passed back and forth while the loop is busy with the SDK.
So the hot-path transactions (`INLINE`) run on the loop's own thread with a busy timeout of 0:
if another process (or another thread of this one) is writing, SQLite or the process's write
lock says so at once, before anything is written, and the transaction runs again in a worker
thread, which waits. Whatever may wait or take long runs in a worker: connecting, opening a run,
reads, and the WAL checkpoints (SQLite's automatic ones would write and fsync on the loop).

Connections and worker threads belong to the database, not to runs: a process keeps at most
`pool_size` of each however many runs it has, and a run borrows one per transaction. Writes of
one process take its write lock in turn, so only one connection per process ever waits on the
file's lock: no writer starves behind its own siblings, and the wait is bounded by `timeout`.
A connection that failed a write (disk full, I/O error) is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from .. import lazy_errors as errors
from . import sql
from .failures import database_error, describe
from .settings import ENV_DB_POOL_SIZE, ENV_DB_TIMEOUT, StoreSettings
from .transactions import MUST_WAIT, MustWait

__all__ = [
    "CHECKPOINT_EVERY",
    "INLINE",
    "SqliteDatabase",
    "SqliteTransactions",
    "enable_wal",
    "schema_lock",
]

log = logging.getLogger("runplane_durable")
T = TypeVar("T")

_SQLITE_BUSY = 5  # primary result code; BUSY_SNAPSHOT and friends share it
_SQLITE_LOCKED = 6
CHECKPOINT_EVERY = 100  # writes of this process between two WAL checkpoints

# Each is one transaction whose first statement writes: a busy database refuses it before it has
# done anything, so it can run again, whole, in a worker.
INLINE: frozenset[Callable[..., Any]] = frozenset(
    {sql.create_run, sql.append, sql.heartbeat, sql.finish, sql.release}
)


class _Busy(Exception):
    """Another connection holds the write lock; nothing was written."""


def _is_busy(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "database is locked" in str(exc.orig)


def schema_lock(conn: Connection) -> None:
    """Take the file's write lock before looking at the schema: concurrent creators queue."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


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


class _Connections:
    """At most `size` open connections to the file, lent one at a time to one thread."""

    def __init__(self, engine: sa.Engine, size: int) -> None:
        self._engine = engine
        self._size = size
        self._idle: list[Connection] = []
        self._open = 0
        self._cond = threading.Condition()

    def try_take(self) -> Connection | None:
        """An idle connection, or None: never waits, never connects (the loop's thread)."""
        with self._cond:
            return self._idle.pop() if self._idle else None

    def take(self, deadline: float) -> Connection:
        """An idle or new connection, waiting for one until `deadline` (a worker thread)."""
        with self._cond:
            while not self._idle and self._open >= self._size:
                left = deadline - time.monotonic()
                timed_out = left <= 0 or not self._cond.wait(left)
                if timed_out and not self._idle and self._open >= self._size:
                    raise TimeoutError
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._engine.connect()
        except BaseException:
            self._gone()
            raise

    def give_back(self, conn: Connection) -> None:
        if conn.closed or conn.invalidated or conn.in_transaction():
            self.discard(conn)
            return
        with self._cond:
            self._idle.append(conn)
            self._cond.notify()

    def discard(self, conn: Connection) -> None:
        """Close a connection that may be broken; the next borrower opens a fresh one."""
        try:
            conn.invalidate()
            conn.close()
        except Exception:  # it is being thrown away: nothing it says matters
            log.debug("closing a broken SQLite connection failed", exc_info=True)
        self._gone()

    def _gone(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def close_idle(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


class SqliteTransactions:
    """A run session's way to the database: each call borrows a connection for one transaction."""

    def __init__(self, owner: SqliteDatabase) -> None:
        self._db = owner
        self._in_call = False  # a transaction of this session is running in a worker
        self._checkpoint_due = False

    def call_now(self, fn: Callable[..., T], *args: Any) -> T | MustWait:
        if fn not in INLINE or self._in_call:
            return MUST_WAIT
        if self._checkpoint_due or self._db.clock.due():
            self._checkpoint_due = True  # `call` runs it, and the checkpoint, in a worker
            return MUST_WAIT
        return self._db.inline(fn, args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._in_call:
            raise RuntimeError("a run session runs one transaction at a time")
        outcome = self.call_now(fn, *args)
        if not isinstance(outcome, MustWait):
            return outcome
        self._in_call = True
        try:
            checkpoint, self._checkpoint_due = self._checkpoint_due, False
            return await self._db.in_worker(fn, args, checkpoint=checkpoint)
        finally:
            self._in_call = False

    async def close(self) -> None:
        """Nothing to give back: connections return to the database after each transaction."""


class SqliteDatabase:
    """What every run on one SQLite file shares in this process: connections, threads, locks."""

    def __init__(self, url: str, settings: StoreSettings, *, read_only: bool = False) -> None:
        self.url = url
        self.settings = settings
        self.read_only = read_only
        self.clock = _CheckpointClock()
        self._write_lock = threading.Lock()  # one writer of this process at a time
        # check_same_thread=False: a connection is lent to one thread at a time, not always the
        # one that opened it.
        path = make_url(url).database or ""
        if read_only and path not in ("", ":memory:") and not path.startswith("file:"):
            self.engine = sa.create_engine(
                url, poolclass=NullPool, creator=lambda: _open_existing(path)
            )
        else:
            self.engine = sa.create_engine(
                url, poolclass=NullPool, connect_args={"check_same_thread": False}
            )
        event.listen(self.engine, "connect", self._pragmas)
        self._connections = _Connections(self.engine, settings.pool_size)
        self._executor = ThreadPoolExecutor(
            max_workers=settings.pool_size, thread_name_prefix="runplane-sqlite"
        )

    def transactions(self) -> SqliteTransactions:
        return SqliteTransactions(self)

    # -- on the event loop's thread --------------------------------------------------------------

    def inline(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T | MustWait:
        """Run a write now if no one is writing and a connection is idle; never wait."""
        if not self._write_lock.acquire(blocking=False):
            return MUST_WAIT
        try:
            conn = self._connections.try_take()
            if conn is None:
                return MUST_WAIT
            try:
                result = fn(conn, *args)
            except DBAPIError as exc:
                if _is_busy(exc):
                    self._rollback_or_discard(conn)
                    return MUST_WAIT  # another process is writing: wait for it in a worker
                self._connections.discard(conn)
                raise database_error(exc, self.url) from exc
            except BaseException:
                self._rollback_or_discard(conn)
                raise
            self._connections.give_back(conn)
            return result
        finally:
            self._write_lock.release()

    # -- in a worker thread ----------------------------------------------------------------------

    async def in_worker(
        self, fn: Callable[..., T], args: tuple[Any, ...], *, checkpoint: bool = False
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.settings.timeout
        return await loop.run_in_executor(
            self._executor, self._work, fn, args, deadline, checkpoint
        )

    def _work(
        self, fn: Callable[..., T], args: tuple[Any, ...], deadline: float, checkpoint: bool
    ) -> T:
        writes = fn not in sql.READS
        try:
            if time.monotonic() >= deadline:  # it waited its whole budget for a worker thread
                raise TimeoutError
            conn = self._connections.take(deadline)
        except TimeoutError:
            raise self._waited("a free connection", ENV_DB_POOL_SIZE) from None
        except DBAPIError as exc:
            raise database_error(exc, self.url) from exc
        locked = False
        try:
            if writes:
                locked = self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
                if not locked:
                    raise self._waited("this process's other writes", ENV_DB_TIMEOUT)
            result = self._run_waiting(conn, fn, args, deadline)
            if checkpoint:
                self._checkpoint(conn)
        except BaseException:
            # The transaction failed: whatever state the connection is in, it is not reused.
            self._connections.discard(conn)
            raise
        finally:
            if locked:
                self._write_lock.release()
        self._connections.give_back(conn)
        return result

    def _run_waiting(
        self, conn: Connection, fn: Callable[..., T], args: tuple[Any, ...], deadline: float
    ) -> T:
        """Run the transaction, waiting out other processes' writes until `deadline`."""
        while True:
            left_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            _driver(conn).execute(f"PRAGMA busy_timeout={left_ms}")
            try:
                try:
                    return fn(conn, *args)
                finally:
                    _reset_busy_timeout(conn)
            except DBAPIError as exc:
                if not _is_busy(exc):
                    raise database_error(exc, self.url) from exc
                self._rollback_or_discard(conn, discard=False)
                if time.monotonic() >= deadline:
                    raise self._waited("another process's write", ENV_DB_TIMEOUT) from exc
                time.sleep(0.001)  # BUSY_SNAPSHOT comes back at once: do not spin

    def _waited(self, what: str, setting: str) -> errors.DatabaseError:
        return errors.DatabaseError(
            f"waited {self.settings.timeout:g} s for {what} on the {describe(self.url)} and gave "
            f"up; nothing was written. If the load is expected, raise {setting}; otherwise find "
            "the process holding the database.",
            database=describe(self.url),
        )

    def _checkpoint(self, conn: Connection) -> None:
        """PASSIVE: copies what it can without waiting for readers or writers."""
        try:
            _driver(conn).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:  # the WAL keeps everything; the next checkpoint catches up
            log.warning("WAL checkpoint of the %s failed", describe(self.url), exc_info=True)

    def _rollback_or_discard(self, conn: Connection, *, discard: bool = True) -> None:
        try:
            if conn.in_transaction():
                conn.rollback()
        except DBAPIError:
            if discard:
                self._connections.discard(conn)
            else:
                raise
            return
        if discard:
            self._connections.give_back(conn)

    def _pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        # synchronous=NORMAL (durability "normal") keeps every committed step across a killed
        # process; FULL also fsyncs the WAL at every commit, for an OS crash or power loss.
        # Connecting may wait for another writer; the transactions set their own timeout after.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(self.settings.timeout * 1000)}")
        synchronous = "FULL" if self.settings.durability == "full" else "NORMAL"
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in a worker (see above)
        cursor.execute("PRAGMA busy_timeout=0")
        if self.read_only:
            cursor.execute("PRAGMA query_only=1")  # refuses every write on this connection
        cursor.close()

    def dispose(self) -> None:
        self._connections.close_idle()
        self._executor.shutdown(wait=False)
        self.engine.dispose()


def _open_existing(path: str) -> sqlite3.Connection:
    """A connection to the file at `path` that never creates it, and leaves it as it was.

    While a WAL file exists (a process has the database open, or was killed with it open), the
    file is opened read-only: the WAL and its index are there to read, and a read-only
    connection cannot fold the WAL back into the database when it closes, as the last
    connection otherwise does. Without one, a read-only connection would create both and leave
    them behind; a writable one made `query_only` removes them when it closes, so reading leaves
    the directory as it was. An unwritable file is opened read-only either way.
    """
    in_use = os.path.exists(f"{path}-wal")
    mode = "ro" if in_use or not os.access(path, os.W_OK) else "rw"
    return sqlite3.connect(
        f"file:{urllib.parse.quote(path)}?mode={mode}", uri=True, check_same_thread=False
    )


def enable_wal(conn: Connection) -> None:
    """WAL lets readers (CLI, server) work while a run writes. Persistent in the file; set only
    once the database is known to be one this version may write."""
    mode = conn.exec_driver_sql("PRAGMA journal_mode=WAL").scalar()
    conn.commit()
    if str(mode).lower() != "wal":
        raise errors.DatabaseError(f"SQLite refused WAL mode (journal_mode stays {mode})")


def _reset_busy_timeout(conn: Connection) -> None:
    """Back to 0 for the loop's thread; a connection too broken for it is discarded anyway."""
    if not conn.invalidated:
        with contextlib.suppress(sqlite3.Error):
            _driver(conn).execute("PRAGMA busy_timeout=0")


def _driver(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver
