"""Attempts: each execution of a run, in its event log as `attempt_started` / `attempt_ended`.

An attempt says where it ran (host, pid, lease holder) and why it ended. A process that is
killed cannot say so: the next attempt, claiming the run, finds the previous one never ended and
writes its end for it ("killed" when its process is known dead, "lease_lost" when its lease
expired with its process not known dead), in the same transaction as the claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .owner import holder_process, owner_is_dead
from .records import JournalRecord, NewEvent, RunRecord

__all__ = ["ENDED", "REASONS", "STARTED", "Attempt", "next_number", "unended"]

STARTED = "attempt_started"
ENDED = "attempt_ended"
# A run's outcome, as the reason its attempt ended.
REASONS = {
    "completed": "finished",
    "failed": "failed",
    "cancelled": "cancelled",
    "awaiting_approval": "awaiting_approval",
}


def _where(owner: str) -> dict[str, Any]:
    host, pid = holder_process(owner)
    return {"owner": owner, "host": host, "pid": pid}


@dataclass(frozen=True)
class Attempt:
    """One execution of a run by one lease holder."""

    number: int
    owner: str

    def started(
        self, *, journal: list[JournalRecord], lease_seconds: float, now: float
    ) -> NewEvent:
        model_calls = sum(1 for e in journal if e.kind == "model")
        return NewEvent(
            STARTED,
            {
                "attempt": self.number,
                **_where(self.owner),
                "resumed": bool(journal),
                "model_calls": model_calls,
                "tool_outputs": len(journal) - model_calls,
                "started_at": now,
                # With the lease's expiry, when the holder last renewed it: its last sign of
                # life, should it die without a word.
                "lease_seconds": lease_seconds,
            },
        )

    def ended(self, reason: str, *, ended_at: float | None) -> NewEvent:
        return NewEvent(
            ENDED,
            {"attempt": self.number, **_where(self.owner), "reason": reason, "ended_at": ended_at},
        )


def next_number(last: dict[str, Any] | None) -> int:
    """The number of the attempt after the one `last` (an attempt event's payload) is about."""
    number = last.get("attempt") if last is not None else None
    return number + 1 if isinstance(number, int) else 1


def unended(
    last_type: str | None, last: dict[str, Any] | None, holder: RunRecord, now: float
) -> NewEvent | None:
    """The end of the previous attempt, if it never said it ended; `holder` is the run as read
    just before the claim, `last` the payload of its last attempt event."""
    if last_type != STARTED or last is None or not isinstance(last.get("owner"), str):
        return None
    owner: str = last["owner"]
    number = last.get("attempt")
    attempt = Attempt(number if isinstance(number, int) else 0, owner)
    if holder.owner is None:  # it gave the lease back without a word (an older version)
        return attempt.ended("interrupted", ended_at=holder.updated_at)
    ended_at: float | None = None
    if holder.owner == owner:
        ended_at = holder.updated_at  # its last step
        lease = last.get("lease_seconds")
        if holder.lease_expires_at is not None and isinstance(lease, (int, float)):
            ended_at = max(ended_at, holder.lease_expires_at - lease)  # its last heartbeat
    event = attempt.ended("killed" if owner_is_dead(owner) else "lease_lost", ended_at=ended_at)
    event.payload["detected_at"] = now
    return event
