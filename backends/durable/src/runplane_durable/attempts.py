"""Attempts: each execution of a run, in its event log as `attempt_started` / `attempt_ended`.

An attempt says where it ran (host, pid, lease holder) and why it ended. A process that is
killed cannot say so: the next attempt, claiming the run, finds the previous one never ended and
writes its end for it ("killed" when its process is known dead, "lease_lost" when its lease
expired with its process not known dead), in the same transaction as the claim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .events import AttemptEnded, AttemptStarted, EndReason, Event, UnknownEvent
from .owner import holder_process, owner_is_dead
from .records import JournalRecord, NewEvent, RunRecord, RunStatus

__all__ = ["ENDED", "REASONS", "STARTED", "Attempt", "by_step", "next_number", "unended"]

STARTED = AttemptStarted.TYPE
ENDED = AttemptEnded.TYPE
# A run's outcome, as the reason its attempt ended.
REASONS: dict[RunStatus, EndReason] = {
    "completed": "finished",
    "failed": "failed",
    "cancelled": "cancelled",
    "awaiting_approval": "awaiting_approval",
}


@dataclass(frozen=True)
class Attempt:
    """One execution of a run by one lease holder."""

    number: int
    owner: str

    def started(
        self, *, journal: list[JournalRecord], lease_seconds: float, now: float
    ) -> NewEvent:
        model_calls = sum(1 for e in journal if e.kind == "model")
        host, pid = holder_process(self.owner)
        return _event(
            AttemptStarted(
                attempt=self.number,
                owner=self.owner,
                host=host,
                pid=pid,
                resumed=bool(journal),
                model_calls=model_calls,
                tool_outputs=len(journal) - model_calls,
                started_at=now,
                # With the lease's expiry, when the holder last renewed it: its last sign of
                # life, should it die without a word.
                lease_seconds=lease_seconds,
            )
        )

    def ended(
        self, reason: EndReason, *, ended_at: float | None, detected_at: float | None = None
    ) -> NewEvent:
        host, pid = holder_process(self.owner)
        return _event(
            AttemptEnded(self.number, self.owner, host, pid, reason, ended_at, detected_at)
        )


def _event(event: AttemptStarted | AttemptEnded) -> NewEvent:
    return NewEvent(event.TYPE, event.to_payload())


def next_number(last: Event | UnknownEvent | None) -> int:
    """The number of the attempt after the one `last` (an attempt event) is about."""
    number = last.attempt if isinstance(last, (AttemptStarted, AttemptEnded)) else None
    return number + 1 if number is not None else 1


def unended(
    last: Event | UnknownEvent | None,
    holder: RunRecord,
    now: float,
    *,
    is_dead: Callable[[str], bool] = owner_is_dead,
) -> NewEvent | None:
    """The end of the previous attempt, if it never said it ended; `holder` is the run as read
    just before the claim, `last` its last attempt event, `is_dead` how its holder is known dead
    (a server is also told by its client, for a holder on the client's host)."""
    if not isinstance(last, AttemptStarted) or last.owner is None:
        return None
    attempt = Attempt(last.attempt if last.attempt is not None else 0, last.owner)
    if holder.owner is None:  # it gave the lease back without a word (an older version)
        return attempt.ended("interrupted", ended_at=holder.updated_at)
    ended_at: float | None = None
    if holder.owner == last.owner:
        ended_at = holder.updated_at  # its last step
        lease = last.lease_seconds
        if holder.lease_expires_at is not None and lease is not None:
            ended_at = max(ended_at, holder.lease_expires_at - lease)  # its last heartbeat
    reason: EndReason = "killed" if is_dead(last.owner) else "lease_lost"
    return attempt.ended(reason, ended_at=ended_at, detected_at=now)


def by_step(events: Sequence[Event | UnknownEvent]) -> list[AttemptStarted | None]:
    """For each event of a run's log, in order, the attempt that wrote it: the last one started
    before it (None before the first). Exact, because every write is fenced by the lease: an
    attempt writes nothing once the next one has claimed the run, so no step of an earlier
    attempt comes after a later attempt's start; an attempt's end written by its successor is
    the one exception, and is about the earlier attempt, which it names."""
    current: AttemptStarted | None = None
    found: list[AttemptStarted | None] = []
    for event in events:
        if isinstance(event, AttemptStarted):
            current = event
        found.append(current)
    return found
