"""PostgreSQL's event notifications in one process: one listening connection, fanned out to the
watchers of each run (`engine.EventFeed` of a `LocalEngine` on PostgreSQL).

Every transaction that adds events to a run NOTIFYs `sql.EVENTS_CHANNEL` with the run's id
(`sql.log_events`, `pg_steps.py`). A `PgListener` keeps one asyncpg connection LISTENing on it,
outside the pool (a pooled connection is lent to one transaction at a time; a listener must stay
connected), and wakes every `RunWatch` of that run. When the connection drops (PostgreSQL
restarted, the backend terminated, a network cut) it connects again with backoff, and on each
(re)connection wakes every watcher: what was written while nobody listened is read then. A
watcher reads the events themselves from the database by seq, so a lost notification delays an
event (to its caller's fallback poll) and never loses one.
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
from .sql import EVENTS_CHANNEL

__all__ = ["PgListener", "RunWatch"]

log = logging.getLogger("runplane_durable")

T = TypeVar("T")

_FIRST_DELAY = 0.1  # seconds before connecting again after a failure, doubled to _MAX_DELAY
_MAX_DELAY = 5.0
_CONNECT_TIMEOUT = 10.0
# A connection can die without the socket saying so (a host gone, a cut link): asked this often.
_HEALTH_SECONDS = 15.0


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
        self.connections = 0  # how many times it connected and listened: 2 is one reconnect
        self.listening = asyncio.Event()  # set while LISTEN holds

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
        self._watches.setdefault(run_id, set()).add(watch)
        try:
            yield watch
        finally:
            watchers = self._watches.get(run_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[run_id]

    def watched(self) -> int:
        """How many runs have watchers now."""
        return len(self._watches)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        for watch in self._watches.get(payload, ()):
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
                self.connections += 1
                self.listening.set()
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
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def _hold(self, conn: Any, lost: asyncio.Event) -> None:
        """Until the connection is lost: a closed socket says so at once; a silent one is found
        by a query every `_HEALTH_SECONDS`."""
        while True:
            try:
                await _within(lost.wait(), _HEALTH_SECONDS)
            except asyncio.TimeoutError:
                await conn.execute("SELECT 1", timeout=_HEALTH_SECONDS)
                continue
            raise ConnectionResetError("the listening connection was closed")

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
