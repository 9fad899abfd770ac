"""A run session's writes as records: each carries everything its fencing needs, with a JSON form.

A session (`session.py`) keeps its state (owner, attempt, next seqs) and turns each step into one
of these; an engine applies it in one transaction. Because a write names its run, its lease
holder, the lease's length and the seqs it takes, any process on the run's database can apply it
(any server of a fleet, a restarted one): nothing about a session lives anywhere but in the
session and the database. A write applied twice (a request retried after its response was lost)
is recognised by its seqs and holder, so it commits once. `Opened` is what opening a run gives
back, so a session can be built from it on either side of a wire.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .names import check_text
from .records import (
    MAX_STORED_INT,
    JournalEntry,
    JournalRecord,
    NewEvent,
    RunRecord,
    RunStatus,
    Snapshot,
    UsageDelta,
    check_status,
)
from .records import _members as members  # one reading of JSON members for every record

__all__ = [
    "Append",
    "Finish",
    "Heartbeat",
    "Interrupt",
    "Opened",
    "Release",
    "Write",
    "WriteName",
    "write_from_json",
]


@dataclass(frozen=True)
class Append:
    """One step: at most one journal entry at `journal_seq`, `events` from `event_seq` on, a usage
    delta; fenced by `owner` and renewing its lease for `lease_seconds`."""

    NAME = "append"
    run_id: str
    owner: str
    lease_seconds: float
    journal_seq: int
    event_seq: int
    journal: JournalEntry | None = None
    events: list[NewEvent] = field(default_factory=list)
    usage: UsageDelta | None = None

    def to_json(self) -> dict[str, Any]:
        data = _plain(self)
        data["journal"] = None if self.journal is None else self.journal.to_json()
        data["events"] = [e.to_json() for e in self.events]
        data["usage"] = None if self.usage is None else self.usage.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> Append:
        m = _checked(cls, data)
        m["journal"] = None if m.get("journal") is None else JournalEntry.from_json(m["journal"])
        m["events"] = [_event(e) for e in _list(m.get("events", []), "events")]
        m["usage"] = None if m.get("usage") is None else UsageDelta.from_json(m["usage"])
        return cls(**m)

    @property
    def detectable(self) -> bool:
        """Whether a second application can be told from the first: it takes a seq."""
        return self.journal is not None or bool(self.events)


@dataclass(frozen=True)
class Heartbeat:
    """Renew the lease of `owner` for `lease_seconds` (applying it twice is harmless)."""

    NAME = "heartbeat"
    run_id: str
    owner: str
    lease_seconds: float

    def to_json(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any) -> Heartbeat:
        return cls(**_checked(cls, data))


@dataclass(frozen=True)
class Finish:
    """The outcome: `status` and its events (the attempt's end first) from `event_seq` on, and the
    lease given up."""

    NAME = "finish"
    run_id: str
    owner: str
    event_seq: int
    events: list[NewEvent]
    status: RunStatus
    final_output: Any | None = None
    error_type: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = _plain(self)
        data["events"] = [e.to_json() for e in self.events]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Finish:
        m = _checked(cls, data)
        check_status(m["status"])
        m["events"] = [_event(e) for e in _list(m["events"], "events")]
        return cls(**m)


@dataclass(frozen=True)
class Release:
    """Give the lease of `owner` up, logging `event` (the attempt's end) if it was still held
    (applying it twice is harmless: the second finds the lease no longer held)."""

    NAME = "release"
    run_id: str
    owner: str
    event: NewEvent | None = None

    def to_json(self) -> dict[str, Any]:
        data = _plain(self)
        data["event"] = None if self.event is None else self.event.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> Release:
        m = _checked(cls, data)
        m["event"] = None if m.get("event") is None else _event(m["event"])
        return cls(**m)


@dataclass(frozen=True)
class Interrupt:
    """The run stops to wait for approval: `snapshot` (the state it resumes from, sealed by the
    engine that stores it, and the calls it waits on), its events from `event_seq` on (the
    attempt's end, `run_awaiting_approval`, one `approval_requested` per call), and the lease
    given up. The run is `awaiting_approval`, not finished: no finished time."""

    NAME = "interrupt"
    run_id: str
    owner: str
    event_seq: int
    events: list[NewEvent]
    snapshot: Snapshot

    def to_json(self) -> dict[str, Any]:
        data = _plain(self)
        data["events"] = [e.to_json() for e in self.events]
        data["snapshot"] = self.snapshot.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> Interrupt:
        m = _checked(cls, data)
        m["events"] = [_event(e) for e in _list(m["events"], "events")]
        m["snapshot"] = Snapshot.from_json(m["snapshot"])
        return cls(**m)


Write = Append | Heartbeat | Finish | Release | Interrupt
WriteName = Literal["append", "heartbeat", "finish", "release", "interrupt"]
_WRITES: dict[
    str, type[Append] | type[Heartbeat] | type[Finish] | type[Release] | type[Interrupt]
] = {w.NAME: w for w in (Append, Heartbeat, Finish, Release, Interrupt)}


def write_from_json(name: str, data: Any) -> Write:
    """The write called `name` ("append", "heartbeat", "finish", "release", "interrupt") from
    its JSON form;
    ValueError for another name or a malformed one."""
    kind = _WRITES.get(name)
    if kind is None:
        raise ValueError(f"{name!r} is not a session write; use one of: {', '.join(_WRITES)}")
    return kind.from_json(data)


@dataclass(frozen=True)
class Opened:
    """A run as opening it found it: the record and journal, the attempt this opening started
    (None: the run is completed, read only), the next seqs, and whether the run is new."""

    record: RunRecord
    journal: list[JournalRecord]
    attempt: int | None
    next_journal_seq: int
    next_event_seq: int
    created: bool

    def to_json(self) -> dict[str, Any]:
        data = _plain(self)
        data["record"] = self.record.to_json()
        data["journal"] = [r.to_json() for r in self.journal]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Opened:
        m = members(cls, data)
        m["record"] = RunRecord.from_json(m["record"])
        m["journal"] = [JournalRecord.from_json(r) for r in _list(m["journal"], "journal")]
        return cls(**m)


# What fences a write, checked before it reaches a database (SQLite would store a seq of "x").
_NAMES = ("run_id", "owner")
_SEQS = ("journal_seq", "event_seq")
# A lease longer than this is a mistake (a silent holder would keep its run for longer); it also
# keeps `now + lease` a finite time.
MAX_LEASE_SECONDS = 7 * 86_400.0


def _checked(cls: type[Any], data: Any) -> dict[str, Any]:
    m = members(cls, data)
    for name in _NAMES:
        if name in m and (not isinstance(m[name], str) or not m[name]):
            raise ValueError(f"{name!r} of a {cls.__name__} must be a non-empty string")
        if name in m:
            check_text(m[name], f"{name} of a {cls.__name__}")  # no NUL, no lone surrogate
    for name in _SEQS:
        seq = m.get(name, 1)
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_STORED_INT:
            raise ValueError(
                f"{name!r} of a {cls.__name__} must be an integer from 1 to {MAX_STORED_INT}"
            )
    lease = m.get("lease_seconds", 1.0)
    if (
        isinstance(lease, bool)
        or not isinstance(lease, (int, float))
        or not 0 < lease <= MAX_LEASE_SECONDS
    ):
        raise ValueError(
            f"'lease_seconds' of a {cls.__name__} must be a number above 0 and at most "
            f"{MAX_LEASE_SECONDS:.0f} (a week)"
        )
    return m


def _event(data: Any) -> NewEvent:
    event = NewEvent.from_json(data)
    check_text(event.type, "an event's type")
    return event


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} in JSON is a list, got {type(value).__name__}")
    return value


def _plain(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
