"""`LocalEngine`: the engine on a database this process opens itself (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from sqlalchemy.engine import Connection

from .. import lazy_errors as errors
from ..attempts import Attempt, next_number, unended
from ..events import AttemptStarted, parse
from ..names import check_run_id
from ..owner import current_owner, owner_is_dead, retire
from ..records import (
    CancelMode,
    EventRecord,
    JournalRecord,
    NewEvent,
    RunRecord,
    RunSpec,
    RunStatus,
    check_status,
)
from ..session import Fenced, JournaledSession, MustWait, say_opened
from ..writes import Opened, Release, Write
from . import sql
from .database import (
    DEFAULT_DIR,
    DEFAULT_FILE,
    ENV_DATABASE_URL,
    Database,
    Transactions,
    describe,
    locate,
)
from .location import passed_over
from .settings import Durability, StoreSettings

__all__ = ["LocalEngine", "LocalRunSession", "LocalWriter"]

log = logging.getLogger("runplane_durable")


class LocalEngine:
    """Engine on a database URL (default: the nearest `.runplane/runplane.db` from the working
    directory up, else a new one under `.runplane/` in it; see `location.py`).

    `pool_size`, `timeout` and `durability` default to RUNPLANE_DB_POOL_SIZE, RUNPLANE_DB_TIMEOUT
    and RUNPLANE_DURABILITY (see `StoreSettings`). `read_only=True` is for looking at runs: the
    database must exist, and nothing is created or written (no file, directory or schema).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int | None = None,
        timeout: float | None = None,
        durability: Durability | None = None,
        read_only: bool = False,
    ) -> None:
        self.location = locate(url)
        self.url = self.location.url
        self.read_only = read_only
        self.settings = StoreSettings.from_env(
            pool_size=pool_size, timeout=timeout, durability=durability
        )
        self._db: Database | None = None
        # Leases this process could not give back (the database failed), by run; given back by
        # the next transaction that works.
        self._unreleased: dict[str, Release] = {}

    def __repr__(self) -> str:
        return f"LocalEngine({describe(self.url)})"

    def describe(self) -> str:
        return describe(self.url)

    @property
    def database(self) -> Database:
        if self._db is None:
            if self.read_only:
                self._refuse_missing()
            self._db = Database(self.url, self.settings, read_only=self.read_only)
        return self._db

    def _refuse_missing(self) -> None:
        """A reader never creates a database: say where none was found, and how to name one."""
        where = self.location
        if where.source == "new":
            looked = ", ".join(str(d) for d in where.searched)
            skipped = "".join(
                f" Passed over {path}: another user could have put it there."
                for path in passed_over(where.searched)
            )
            raise errors.DatabaseError(
                f"no runplane database here (looked for {DEFAULT_DIR}/{DEFAULT_FILE} in "
                f"{looked}); nothing was created. Run a durable program in this directory or "
                f"one above it first, or name the database with --db or {ENV_DATABASE_URL}."
                + skipped
            )
        path = where.sqlite_path
        if path is not None and not path.is_file():
            named = {"environment": f" (from {ENV_DATABASE_URL})"}.get(where.source, "")
            raise errors.DatabaseError(
                f"no SQLite database at {path}{named}; nothing was created. Check the path "
                "(without one, the nearest .runplane/runplane.db is used)."
            )

    async def open_run(self, spec: RunSpec, *, lease_seconds: float) -> LocalRunSession:
        self._refuse_read_only()
        owner = current_owner()
        try:
            opened = await self.open_for(spec, owner=owner, lease_seconds=lease_seconds)
        except BaseException:
            retire(owner)
            raise
        say_opened(spec, opened, describe(self.url))
        writer = LocalWriter(await self.database.transactions(), self._unreleased)
        return JournaledSession(writer, opened, owner=owner, lease_seconds=lease_seconds)

    def _refuse_read_only(self) -> None:
        if self.read_only:
            raise errors.DatabaseError(
                f"this LocalEngine opened the {describe(self.url)} read-only (read_only=True); "
                "runs execute on an engine made without it.",
                database=describe(self.url),
            )

    async def _release_left_over(self, tx: Transactions) -> None:
        for run_id, release in list(self._unreleased.items()):
            try:
                fn, args = sql.write_call(release)
                await tx.call(fn, *args)
            except errors.DatabaseError:
                log.warning("run %s still holds a lease this process could not give back", run_id)
                return
            self._unreleased.pop(run_id, None)
            log.info("gave back the lease of run %s after the database recovered", run_id)

    # -- serving sessions (`session.SessionHost`): this process's own, and a server's clients' --

    async def open_for(
        self,
        spec: RunSpec,
        *,
        owner: str,
        lease_seconds: float,
        dead_holder: str | None = None,
    ) -> Opened:
        """Create or claim the run for lease holder `owner` (see `SessionHost.open_for`)."""
        self._refuse_read_only()
        tx = await self.database.transactions()
        try:
            await self._release_left_over(tx)
            # A new run is one insert, with its first attempt's event (on SQLite, on the loop's
            # thread when the file is free).
            first = Attempt(1, owner)
            started = first.started(journal=[], lease_seconds=lease_seconds, now=time.time())
            new = await tx.call(sql.create_run, spec, owner, lease_seconds, started)
            if new is not None:
                return Opened(new, [], 1, 1, 2, created=True)
            # one hop to the database for the whole claim, not one per statement
            return await tx.call(_claim_sync, spec, owner, lease_seconds, dead_holder)
        finally:
            await tx.close()

    async def apply(self, write: Write, *, retried: bool = False) -> Fenced:
        """Apply one session write for a client (see `SessionHost.apply`). A retried one is
        first looked for: if it committed already it is not applied again, and if applying it
        fails it is looked for once more (the first request may have committed meanwhile)."""
        self._refuse_read_only()
        if retried and (found := await self.database.call(sql.committed, write)) is not None:
            return found
        tx = await self.database.transactions()
        try:
            return await LocalWriter(tx, self._unreleased).write(write)
        except errors.DatabaseError:
            if retried and (found := await self.database.call(sql.committed, write)) is not None:
                return found
            raise
        finally:
            await tx.close()

    async def cancel_requested(self, run_id: str) -> CancelMode | None:
        record = await self.database.call(sql.get_run, check_run_id(run_id))
        return None if record is None else record.cancel_requested

    async def get_run(self, run_id: str) -> RunRecord:
        record = await self.database.call(sql.get_run, check_run_id(run_id))
        if record is None:
            raise errors.RunNotFoundError(run_id=run_id, database=describe(self.url))
        return record

    async def list_runs(
        self, *, limit: int | None = 50, status: RunStatus | None = None
    ) -> list[RunRecord]:
        """Runs, newest first: at most `limit` (None: all), only `status` ones if given."""
        if status is not None:
            check_status(status)  # a caller's string (the CLI's --status): say what is allowed
        return await self.database.call(sql.list_runs, limit, status)

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        return await self.database.call(sql.list_events, check_run_id(run_id), after, limit)

    async def read_journal(self, run_id: str) -> list[JournalRecord]:
        return await self.database.call(sql.read_journal, check_run_id(run_id))

    async def dispose(self) -> None:
        if self._db is not None:
            if self._unreleased:
                with contextlib.suppress(errors.DatabaseError):
                    await self._release_left_over(await self._db.transactions())
            await self._db.dispose()


def _claim_sync(
    conn: Connection, spec: RunSpec, owner: str, lease_seconds: float, dead_holder: str | None
) -> Opened:
    """Claim an existing run, and read what a replay needs, in one transaction function.

    The claim logs the new attempt's start, after the end of the previous attempt if that one
    never wrote it (its process was killed, or stalled past its lease), in the claim's own
    transaction. A finished run is only read: replaying it is no attempt. A run `owner` holds
    already was claimed by this very opening (a request retried after its answer was lost):
    it is read, not claimed twice. `dead_holder` is a holder the caller knows is dead.
    """
    row = sql.get_run(conn, spec.run_id)
    if row is None:  # deleted between the insert that found it and now: a new run after all
        raise errors.RunNotFoundError(run_id=spec.run_id, vanished=True)
    if row.agent_name != spec.agent_name:
        raise errors.RunInputMismatchError(
            run_id=spec.run_id,
            what_changed="agent",
            recorded_agent=row.agent_name,
            agent=spec.agent_name,
        )
    if row.input_fingerprint != spec.input_fingerprint:
        raise errors.RunInputMismatchError(run_id=spec.run_id, what_changed="input")
    if row.status == "cancelled":
        raise errors.RunCancelledError(run_id=spec.run_id)
    if row.status == "completed":
        entries = sql.read_journal(conn, spec.run_id)
        last = sql.max_event_seq(conn, spec.run_id)
        return Opened(row, entries, None, _next(entries), last + 1, created=False)
    holder = row.owner
    if holder == owner:
        return _opened_already(conn, row, owner)

    def is_dead(name: str) -> bool:
        return name == dead_holder or owner_is_dead(name)

    dead = holder if holder is not None and is_dead(holder) else None
    attempt: list[Attempt] = []

    def attempt_events(
        run: RunRecord,
        journal: list[JournalRecord],
        last_type: str | None,
        last_payload: dict[str, Any] | None,
    ) -> list[NewEvent]:
        now = time.time()
        last = None if last_type is None else parse(NewEvent(last_type, last_payload or {}))
        ours = Attempt(next_number(last), owner)
        attempt.append(ours)
        previous = unended(last, row, now, is_dead=is_dead)
        started = ours.started(journal=journal, lease_seconds=lease_seconds, now=now)
        return [started] if previous is None else [previous, started]

    claimed = sql.claim(conn, spec.run_id, owner, lease_seconds, dead, attempt_events)
    if claimed is None:
        expires = row.lease_expires_at or time.time()
        raise errors.RunLeasedError(
            run_id=spec.run_id, holder=holder, lease_expires_in=max(0.0, expires - time.time())
        )
    run, entries, last_event = claimed
    return Opened(run, entries, attempt[-1].number, _next(entries), last_event + 1, created=False)


def _next(entries: list[JournalRecord]) -> int:
    return (entries[-1].seq + 1) if entries else 1


def _opened_already(conn: Connection, row: RunRecord, owner: str) -> Opened:
    """The opening `owner` made, read back: its attempt is the last one started."""
    entries = sql.read_journal(conn, row.id)
    last = sql.max_event_seq(conn, row.id)
    started = sql.last_attempt_started(conn, row.id)
    parsed = None if started is None else parse(NewEvent(AttemptStarted.TYPE, started))
    number = parsed.attempt if isinstance(parsed, AttemptStarted) else None
    first = number in (None, 1) and not entries
    return Opened(row, entries, number or 1, _next(entries), last + 1, created=first)


class LocalWriter:
    """A session's writes on this process's database: each one transaction (see `sql.py`)."""

    def __init__(self, tx: Transactions, unreleased: dict[str, Release]) -> None:
        self._tx = tx
        self._unreleased = unreleased

    def write_now(self, write: Write) -> Fenced | MustWait:
        fn, args = sql.write_call(write)
        outcome = self._tx.call_now(fn, *args)
        return outcome if isinstance(outcome, MustWait) else _found(write, outcome)

    async def write(self, write: Write) -> Fenced:
        fn, args = sql.write_call(write)
        return _found(write, await self._tx.call(fn, *args))

    async def cancel_requested(self, run_id: str) -> CancelMode | None:
        record = await self._tx.call(sql.get_run, run_id)
        return None if record is None else record.cancel_requested

    def unreleased(self, release: Release) -> None:
        self._unreleased[release.run_id] = release

    async def close(self) -> None:
        await self._tx.close()


def _found(write: Write, ours: bool | None) -> Fenced:
    """What a write's transaction found, as a session reads it: these transactions say whether
    the run was still ours (a release, None, always is); its events took the seqs it named, and
    they do not read the run's stop request (None: `poll_cancel` reads it)."""
    if ours is False:
        return None
    return None, getattr(write, "event_seq", 0)


# The session LocalEngine.open_run gives: the one implementation, writing through LocalWriter.
LocalRunSession = JournaledSession
