"""PostgreSQL's event notifications in one process: one listening connection, fanned out to the
watchers of each run (`engine.EventFeed` of a `LocalEngine` on PostgreSQL).

Every transaction that adds events to a watched run NOTIFYs `sql.EVENTS_CHANNEL` with the run's
id (`sql.log_events`, `pg_steps.py`). A `PgListener` keeps one asyncpg connection LISTENing on
it, outside the pool (a pooled connection is lent to one transaction at a time; a listener must
stay connected), holds on it a shared advisory lock per run it watches (what makes a writer
notify: `sql.watched`), and wakes every `RunWatch` of that run. A watch is woken once its lock
is held too: a write that committed before then is read then. When the connection drops
(PostgreSQL restarted, the backend terminated, a network cut) its locks go with it; it connects
again with backoff, takes the locks again, and wakes every watch: what was written while nobody
listened is read then. A watcher reads the events themselves from the database by seq, so a
lost notification delays an event (to its caller's fallback poll) and never loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from .failures import describe
from .sql import EVENTS_CHANNEL, WATCH_LOCK_CLASS

__all__ = ["PgListener", "RunWatch"]

log = logging.getLogger("runplane_durable")

T = TypeVar("T")

_FIRST_DELAY = 0.1  # seconds before connecting again after a failure, doubled to _MAX_DELAY
_MAX_DELAY = 5.0
_CONNECT_TIMEOUT = 10.0
# A connection can die without the socket saying so (a host gone, a cut link): asked this often.
_HEALTH_SECONDS = 15.0
_LOCK = f"SELECT pg_advisory_lock_shared({WATCH_LOCK_CLASS}, hashtext($1))"
_UNLOCK = f"SELECT pg_advisory_unlock_shared({WATCH_LOCK_CLASS}, hashtext($1))"


class RunWatch:
    """Wake-ups for one run: `wait` returns once a notification came since the watch began or
    since the last `wait` returned, so one that arrives while its owner reads is not lost."""

    def __init__(self) -> None:
        self._notified = asyncio.Event()

    def notify(self) -> None:
        self._notified.set()

    async def wait(self, timeout: float) -> bool:
        """True once notified; False after `timeout` seconds without a notification."""
        try:
            await _within(self._notified.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        self._notified.clear()
        return True


class PgListener:
    """This process's listener on one PostgreSQL database, on the event loop that started it."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._watches: dict[str, set[RunWatch]] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._locked: set[str] = set()  # the runs whose watch lock the connection holds
        self._changes: asyncio.Queue[str] = asyncio.Queue()  # runs watched or no longer
        self.connections = 0  # how many times it connected and listened: 2 is one reconnect

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def start(self) -> None:
        """Start listening in the background; connection failures are retried, never raised."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.ensure_future(self._listen())

    @contextlib.contextmanager
    def watch(self, run_id: str) -> Iterator[RunWatch]:
        """A watch of `run_id`'s notifications while the block runs."""
        watch = RunWatch()
        watchers = self._watches.setdefault(run_id, set())
        if not watchers:
            self._changes.put_nowait(run_id)
        watchers.add(watch)
        try:
            yield watch
        finally:
            watchers.discard(watch)
            if not watchers and self._watches.get(run_id) is watchers:
                del self._watches[run_id]
                self._changes.put_nowait(run_id)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self._wake(payload)

    def _wake(self, run_id: str) -> None:
        for watch in self._watches.get(run_id, ()):
            watch.notify()

    def _wake_all(self) -> None:
        for watchers in self._watches.values():
            for watch in watchers:
                watch.notify()

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # only where PostgreSQL is used

        delay = _FIRST_DELAY
        reported = False
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=_CONNECT_TIMEOUT,
                    server_settings={"application_name": "runplane-listen"},
                )
                lost = asyncio.Event()
                conn.add_termination_listener(functools.partial(_closed, lost))
                await conn.add_listener(EVENTS_CHANNEL, self._notified)
                self._locked = set()  # a new session holds none
                for run_id in list(self._watches):
                    await self._reconcile(conn, run_id)
                self.connections += 1
                if reported:
                    log.info("listening for run events on the %s again", describe(self._url))
                delay, reported = _FIRST_DELAY, False
                self._wake_all()  # events written while nobody listened are read now
                await self._hold(conn, lost)
            except Exception as exc:  # whatever broke the link, the listener goes on
                if not reported:
                    log.warning(
                        "not listening for run events on the %s (%s: %s); event streams poll "
                        "meanwhile, and it connects again",
                        describe(self._url),
                        type(exc).__name__,
                        exc,
                    )
                    reported = True
            finally:
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def _hold(self, conn: Any, lost: asyncio.Event) -> None:
        """Take and give back watch locks as runs are watched, until the connection is lost: a
        closed socket says so at once; a silent one is found by a query every
        `_HEALTH_SECONDS`."""
        closed = asyncio.ensure_future(lost.wait())
        change: asyncio.Future[str] | None = None
        try:
            while True:
                change = asyncio.ensure_future(self._changes.get())
                done, _ = await asyncio.wait(
                    {closed, change}, timeout=_HEALTH_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if closed in done:
                    raise ConnectionResetError("the listening connection was closed")
                if change in done:
                    await self._reconcile(conn, change.result())
                else:
                    change.cancel()
                    await conn.execute("SELECT 1", timeout=_HEALTH_SECONDS)
                change = None
        finally:
            closed.cancel()
            if change is not None and not change.cancel() and not change.cancelled():
                self._changes.put_nowait(change.result())  # taken, not done: for the next link

    async def _reconcile(self, conn: Any, run_id: str) -> None:
        """Hold the run's watch lock if it has watchers, else give it back; a watch is woken
        once its lock is held (a write that committed before is read then)."""
        wanted, held = run_id in self._watches, run_id in self._locked
        if wanted and not held:
            await conn.execute(_LOCK, run_id, timeout=_HEALTH_SECONDS)
            self._locked.add(run_id)
            self._wake(run_id)
        elif held and not wanted:
            await conn.execute(_UNLOCK, run_id, timeout=_HEALTH_SECONDS)
            self._locked.discard(run_id)

    async def close(self) -> None:
        """Stop listening and close the connection (on the loop that started it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _closed(lost: asyncio.Event, conn: Any) -> None:
    """asyncpg's word that the connection closed (the server ended it, the socket broke)."""
    lost.set()


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """`awaitable`, raising asyncio.TimeoutError past `seconds`; not `wait_for` on 3.11 (it can
    swallow a cancellation that arrives as the awaitable completes, CPython issue 86296)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10
