"""`LocalEngine`: the engine on a database this process opens itself (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .errors import RunInputMismatchError, RunLeasedError, RunNotFoundError
from .owner import current_owner, owner_is_dead
from .records import EventRecord, JournalRecord, NewEvent, RunRecord, RunSpec, UsageDelta
from .serde import dump_json, load_json
from .store.database import create_engine, database_error, ensure_schema, resolve_url
from .store.schema import events, journal, runs

__all__ = ["LocalEngine", "LocalRunSession"]

T = TypeVar("T")


def _record(row: Any) -> RunRecord:
    return RunRecord(
        id=row.id,
        agent_name=row.agent_name,
        status=row.status,
        input=load_json(row.input),
        options=load_json(row.options),
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        owner=row.owner,
        lease_expires_at=row.lease_expires_at,
        model_calls=row.model_calls,
        tool_calls=row.tool_calls,
        requests=row.requests,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        total_tokens=row.total_tokens,
        final_output=None if row.final_output is None else load_json(row.final_output),
        error_type=row.error_type,
        error=row.error,
    )


class LocalEngine:
    """Engine on a database URL (default: SQLite under .runplane/ in the working directory)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        self._engine: AsyncEngine | None = None
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"LocalEngine({self._engine.url.render_as_string() if self._engine else self.url})"

    async def _connect(self) -> AsyncConnection:
        if self._engine is None:
            self._engine = create_engine(self.url)
        try:
            conn = await self._engine.connect()
        except (DBAPIError, OSError) as exc:
            raise database_error(exc, self.url) from exc
        if not self._schema_ready:
            try:
                await ensure_schema(conn, self.url)
            except BaseException:
                await conn.close()
                raise
            self._schema_ready = True
        return conn

    async def open_run(self, spec: RunSpec, *, lease_seconds: float) -> LocalRunSession:
        conn = await self._connect()
        try:
            return await self._open(conn, spec, lease_seconds)
        except DBAPIError as exc:
            await conn.close()
            raise database_error(exc, self.url) from exc
        except BaseException:
            await conn.close()
            raise

    async def _open(
        self, conn: AsyncConnection, spec: RunSpec, lease_seconds: float
    ) -> LocalRunSession:
        owner = current_owner()
        now = time.time()
        created = False
        try:
            await conn.execute(
                runs.insert().values(
                    id=spec.run_id,
                    agent_name=spec.agent_name,
                    status="running",
                    input=dump_json(spec.input),
                    input_fingerprint=spec.input_fingerprint,
                    options=dump_json(spec.options),
                    created_at=now,
                    updated_at=now,
                    owner=owner,
                    lease_expires_at=now + lease_seconds,
                    model_calls=0,
                    tool_calls=0,
                    requests=0,
                    input_tokens=0,
                    output_tokens=0,
                    total_tokens=0,
                )
            )
            await conn.commit()
            created = True
        except IntegrityError:
            await conn.rollback()
        row = (await conn.execute(sa.select(runs).where(runs.c.id == spec.run_id))).one()
        if not created:
            if row.input_fingerprint != spec.input_fingerprint or row.agent_name != spec.agent_name:
                raise RunInputMismatchError(
                    f"run {spec.run_id!r} was started with agent {row.agent_name!r} and a "
                    f"different input; a run id names one run. Use a new run id, or resume it "
                    f"with the same agent and input (`runplane runs show {spec.run_id}`)."
                )
            if row.status == "cancelled":
                raise RunInputMismatchError(
                    f"run {spec.run_id!r} was cancelled; it cannot be resumed. Use a new run id."
                )
            if row.status != "completed":
                await self._take_lease(conn, row, owner, now, lease_seconds)
                row = (await conn.execute(sa.select(runs).where(runs.c.id == spec.run_id))).one()
        journal_rows = (
            await conn.execute(
                sa.select(journal).where(journal.c.run_id == spec.run_id).order_by(journal.c.seq)
            )
        ).all()
        last_event = (
            await conn.execute(
                sa.select(sa.func.max(events.c.seq)).where(events.c.run_id == spec.run_id)
            )
        ).scalar_one()
        await conn.commit()
        entries = [
            JournalRecord(r.seq, r.kind, r.key, r.fingerprint, load_json(r.payload))
            for r in journal_rows
        ]
        return LocalRunSession(
            conn,
            url=self.url,
            record=_record(row),
            journal=entries,
            created=created,
            read_only=row.status == "completed",
            owner=owner,
            lease_seconds=lease_seconds,
            next_journal_seq=(entries[-1].seq + 1) if entries else 1,
            next_event_seq=(last_event or 0) + 1,
        )

    async def _take_lease(
        self, conn: AsyncConnection, row: Any, owner: str, now: float, lease_seconds: float
    ) -> None:
        holder = row.owner
        free = sa.or_(
            runs.c.owner.is_(None),
            runs.c.lease_expires_at < now,
            runs.c.owner == owner,
        )
        if holder is not None and owner_is_dead(holder):
            free = sa.or_(free, runs.c.owner == holder)
        result = await conn.execute(
            runs.update()
            .where(runs.c.id == row.id, free)
            .values(owner=owner, lease_expires_at=now + lease_seconds, status="running")
        )
        await conn.commit()
        if result.rowcount != 1:
            expires = row.lease_expires_at or now
            raise RunLeasedError(
                f"run {row.id!r} is being executed by {holder} (lease valid for another "
                f"{max(0.0, expires - now):.0f} s); one run never executes twice at once. Wait "
                "for that process to finish, or for its lease to expire if it died."
            )

    async def get_run(self, run_id: str) -> RunRecord:
        conn = await self._connect()
        try:
            row = (await conn.execute(sa.select(runs).where(runs.c.id == run_id))).one_or_none()
        except DBAPIError as exc:
            raise database_error(exc, self.url) from exc
        finally:
            await conn.close()
        if row is None:
            raise RunNotFoundError(
                f"no run {run_id!r} in the {self.url}; `runplane runs list` shows the runs there."
            )
        return _record(row)

    async def list_runs(self, *, limit: int = 50, status: str | None = None) -> list[RunRecord]:
        query = sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(runs.c.status == status)
        conn = await self._connect()
        try:
            return [_record(r) for r in (await conn.execute(query)).all()]
        except DBAPIError as exc:
            raise database_error(exc, self.url) from exc
        finally:
            await conn.close()

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        query = (
            sa.select(events)
            .where(events.c.run_id == run_id, events.c.seq > after)
            .order_by(events.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        conn = await self._connect()
        try:
            rows = (await conn.execute(query)).all()
        except DBAPIError as exc:
            raise database_error(exc, self.url) from exc
        finally:
            await conn.close()
        return [
            EventRecord(r.run_id, r.seq, r.type, load_json(r.payload), r.created_at) for r in rows
        ]

    async def read_journal(self, run_id: str) -> list[JournalRecord]:
        conn = await self._connect()
        try:
            rows = (
                await conn.execute(
                    sa.select(journal).where(journal.c.run_id == run_id).order_by(journal.c.seq)
                )
            ).all()
        except DBAPIError as exc:
            raise database_error(exc, self.url) from exc
        finally:
            await conn.close()
        return [
            JournalRecord(r.seq, r.kind, r.key, r.fingerprint, load_json(r.payload)) for r in rows
        ]

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


class LocalRunSession:
    """A run's connection: every write is one committed transaction, serialised by a lock."""

    def __init__(
        self,
        conn: AsyncConnection,
        *,
        url: str,
        record: RunRecord,
        journal: list[JournalRecord],
        created: bool,
        read_only: bool,
        owner: str,
        lease_seconds: float,
        next_journal_seq: int,
        next_event_seq: int,
    ) -> None:
        self._conn = conn
        self._url = url
        self.record = record
        self.journal = journal
        self.created = created
        self.read_only = read_only
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._journal_seq = next_journal_seq
        self._event_seq = next_event_seq
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def run_id(self) -> str:
        return self.record.id

    async def _shielded(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run one write to completion even if the caller is cancelled meanwhile.

        The SDK cancels sibling tool tasks when one fails; a write cut off mid-statement would
        leave the connection in a broken transaction and lose the step. Shielded, a step is
        either committed whole or not begun, and the next write waits for it on the lock.
        """

        async def locked() -> T:
            async with self._lock:
                return await write()

        return await asyncio.shield(asyncio.ensure_future(locked()))

    async def append(
        self,
        *,
        journal: tuple[str, str, str | None, Any] | None = None,
        events: list[NewEvent] | None = None,
        usage: UsageDelta | None = None,
    ) -> None:
        await self._shielded(lambda: self._append(journal, events, usage))

    async def _append(
        self,
        journal: tuple[str, str, str | None, Any] | None,
        events: list[NewEvent] | None,
        usage: UsageDelta | None,
    ) -> None:
        now = time.time()
        try:
            if journal is not None:
                kind, key, fp, payload = journal
                await self._conn.execute(
                    _JOURNAL_INSERT,
                    {
                        "run_id": self.run_id,
                        "seq": self._journal_seq,
                        "kind": kind,
                        "key": key,
                        "fingerprint": fp,
                        "payload": dump_json(payload),
                        "created_at": now,
                    },
                )
            if events:
                await self._conn.execute(
                    _EVENT_INSERT,
                    [
                        {
                            "run_id": self.run_id,
                            "seq": self._event_seq + i,
                            "type": e.type,
                            "payload": dump_json(e.payload),
                            "created_at": now,
                        }
                        for i, e in enumerate(events)
                    ],
                )
            values: dict[str, Any] = {
                "updated_at": now,
                "lease_expires_at": now + self._lease_seconds,
            }
            if usage is not None:
                for name in (
                    "model_calls",
                    "tool_calls",
                    "requests",
                    "input_tokens",
                    "output_tokens",
                    "total_tokens",
                ):
                    delta = getattr(usage, name)
                    if delta:
                        values[name] = getattr(runs.c, name) + delta
            result = await self._conn.execute(
                runs.update()
                .where(runs.c.id == self.run_id, runs.c.owner == self._owner)
                .values(**values)
            )
            if result.rowcount != 1:
                await self._conn.rollback()
                raise self._lost_lease()
            await self._conn.commit()
        except DBAPIError as exc:
            await self._conn.rollback()
            raise database_error(exc, self._url) from exc
        if journal is not None:
            self._journal_seq += 1
        if events:
            self._event_seq += len(events)

    def _lost_lease(self) -> RunLeasedError:
        return RunLeasedError(
            f"run {self.run_id!r} was taken over by another process while this one ran it "
            "(its lease expired: was this process stalled?). This process stops here; the "
            "other one continues the run from its journal."
        )

    async def heartbeat(self) -> None:
        await self._shielded(self._heartbeat)

    async def _heartbeat(self) -> None:
        now = time.time()
        try:
            result = await self._conn.execute(
                runs.update()
                .where(runs.c.id == self.run_id, runs.c.owner == self._owner)
                .values(lease_expires_at=now + self._lease_seconds)
            )
            await self._conn.commit()
        except DBAPIError as exc:
            await self._conn.rollback()
            raise database_error(exc, self._url) from exc
        if result.rowcount != 1:
            raise self._lost_lease()

    async def finish(
        self,
        status: str,
        *,
        final_output: Any | None = None,
        error: BaseException | None = None,
    ) -> None:
        event = NewEvent(
            f"run_{status}",
            {"final_output": final_output}
            if error is None
            else {"error_type": _error_type(error), "error": str(error)},
        )
        await self._shielded(lambda: self._finish(status, event, final_output, error))

    async def _finish(
        self, status: str, event: NewEvent, final_output: Any | None, error: BaseException | None
    ) -> None:
        now = time.time()
        try:
            await self._conn.execute(
                _EVENT_INSERT,
                [
                    {
                        "run_id": self.run_id,
                        "seq": self._event_seq,
                        "type": event.type,
                        "payload": dump_json(event.payload),
                        "created_at": now,
                    }
                ],
            )
            await self._conn.execute(
                runs.update()
                .where(runs.c.id == self.run_id, runs.c.owner == self._owner)
                .values(
                    status=status,
                    updated_at=now,
                    finished_at=now,
                    owner=None,
                    lease_expires_at=None,
                    final_output=None if final_output is None else dump_json(final_output),
                    error_type=None if error is None else _error_type(error),
                    error=None if error is None else str(error),
                )
            )
            await self._conn.commit()
            self._event_seq += 1
        except DBAPIError as exc:
            await self._conn.rollback()
            raise database_error(exc, self._url) from exc

    async def release(self) -> None:
        await self._shielded(self._release)

    async def _release(self) -> None:
        try:
            await self._conn.execute(
                runs.update()
                .where(runs.c.id == self.run_id, runs.c.owner == self._owner)
                .values(owner=None, lease_expires_at=None, updated_at=time.time())
            )
            await self._conn.commit()
        except DBAPIError as exc:
            await self._conn.rollback()
            raise database_error(exc, self._url) from exc

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._conn.close()


def _error_type(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


_JOURNAL_INSERT = journal.insert()
_EVENT_INSERT = events.insert()
