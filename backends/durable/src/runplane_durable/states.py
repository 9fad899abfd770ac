"""What a run's stored record means now: its state, and which of its tools were in flight.

The stored status says `running` both for a run executing now and for one whose process was
killed or interrupted; the state tells them apart. Derived from plain records alone (no SDK, no
database), so the CLI, and later the HTTP API and UI, say the same thing about the same run.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from .events import Event, ModelCalled, RunAwaitingApproval, ToolCalled, UnknownEvent, parse
from .owner import owner_is_dead
from .records import CancelMode, EventRecord, RunRecord, RunStatus

__all__ = [
    "FINISHED",
    "STATES",
    "STATUSES",
    "Holder",
    "InFlight",
    "RunState",
    "State",
    "run_state",
    "status_of",
    "tools_cut_off",
    "tools_in_flight",
]

RunState = Literal[
    "queued",
    "running",
    "orphaned",
    "stopped",
    "awaiting_approval",
    "completed",
    "failed",
    "cancelled",
]
STATES: tuple[str, ...] = get_args(RunState)
STATUSES: tuple[str, ...] = get_args(RunStatus)
# Runs that execute nothing more unless started again: none of their tools is in flight.
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class Holder:
    """The process a lease holder string (`owner.py`: host:pid:token:count) names."""

    host: str
    pid: int | None

    @classmethod
    def of(cls, owner: str) -> Holder:
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        return cls(host, int(pid) if pid.isdigit() else None)

    def __str__(self) -> str:
        return self.host if self.pid is None else f"{self.host} pid {self.pid}"


@dataclass(frozen=True)
class State:
    """A run's state, and one sentence saying why and what can be done about it; with the stop
    asked for from another process that its holder has not carried out yet, if any."""

    state: RunState
    why: str
    cancel_requested: CancelMode | None = None

    @property
    def label(self) -> str:
        """The state as people read it: "running, cancel requested" while a stop is pending."""
        return self.state if self.cancel_requested is None else f"{self.state}, cancel requested"

    @property
    def short_label(self) -> str:
        """The same, as narrow as the widest state, for a table: "running (cancel)"."""
        return self.state if self.cancel_requested is None else f"{self.state} (cancel)"


def run_state(
    run: RunRecord,
    *,
    now: float | None = None,
    holder_is_dead: Callable[[str], bool] = owner_is_dead,
) -> State:
    """The state of `run` at `now` (default: the current time).

    A `running` run is `running` while its holder holds a live lease; `orphaned` once that
    holder is known dead (it ran on this host and its pid is gone) or its lease expired (a
    holder on another host is judged by its lease alone); `stopped` when no process holds it
    (interrupted: Ctrl-C, a stream consumer that went away). Orphaned and stopped runs resume
    when their id runs again.
    """
    state = _running_state(run, now, holder_is_dead)
    if run.cancel_requested is None or state.state in FINISHED:
        return state
    how = "at once" if run.cancel_requested == "immediate" else "at its next turn"
    pending = (
        f"; cancel requested ({run.cancel_requested}): its process stops it {how}"
        if state.state == "running"
        else "; cancel requested: running it again records it cancelled"
    )
    return State(state.state, state.why + pending, run.cancel_requested)


def _running_state(
    run: RunRecord, now: float | None, holder_is_dead: Callable[[str], bool]
) -> State:
    if run.status != "running":
        return State(run.status, _FINAL[run.status])
    if run.owner is None:
        return State(
            "stopped",
            "interrupted, no process holds it; run it again with the same run id to resume it",
        )
    holder = Holder.of(run.owner)
    now = time.time() if now is None else now
    resume = "run it again with the same run id to resume it from its journal"
    if holder_is_dead(run.owner):
        return State("orphaned", f"its process ({holder}) is gone; {resume}")
    expires = run.lease_expires_at
    if expires is not None and expires <= now:
        where = "" if holder.host == socket.gethostname() else " on another host"
        return State(
            "orphaned",
            f"the lease of its process ({holder}{where}) expired {_ago(now - expires)} ago; "
            f"{resume}",
        )
    left = "" if expires is None else f", lease valid for another {expires - now:.0f} s"
    return State("running", f"executing in {holder}{left}")


_FINAL: dict[str, str] = {
    "queued": "started with Runner.start; waiting for a worker that knows its agent",
    "awaiting_approval": "waiting for a decision on a tool call that needs approval",
    "completed": "finished; running its id again returns the stored result",
    "failed": "raised; running its id again resumes it from its journal",
    "cancelled": "cancelled; final: its id cannot run again",
}


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def status_of(state: str) -> RunStatus:
    """The stored status a state refines (`orphaned` and `stopped` runs are stored `running`)."""
    if state in ("running", "orphaned", "stopped"):
        return "running"
    if state not in STATUSES:
        raise ValueError(f"unknown run state {state!r}; one of: {', '.join(STATES)}")
    return state  # type: ignore[return-value]


@dataclass(frozen=True)
class InFlight:
    """A tool call the model asked for whose output the journal never got."""

    ordinal: int  # the model call that asked for it (0-based, as in its event)
    call_id: str
    name: str
    key: str  # its journal key (`ModelCalled.key_of`, by `names.tool_key`)


def tools_in_flight(
    status: RunStatus, events: Sequence[EventRecord | Event | UnknownEvent]
) -> list[InFlight]:
    """The tool calls that were running when the run stopped, so run again when it resumes.

    A call is in flight only when the model asked for it, no `tool_call` event holds its key
    (a tool that raised has one, with its error), it does not wait for approval, and the run is
    not finished. A run awaiting approval whose event does not name the calls that wait (an
    older database) executes nothing: none of its calls is in flight. `events` are stored
    records or already parsed ones (`events.parse`).
    """
    if status in FINISHED:
        return []
    return _unfinished(status, events)


def tools_cut_off(
    status: RunStatus, events: Sequence[EventRecord | Event | UnknownEvent]
) -> list[InFlight]:
    """The tool calls a cancelled run stopped in the middle of: asked for, never completed (no
    output was journaled, and none ever will be: the run is final). Empty for any other run."""
    if status != "cancelled":
        return []
    return _unfinished(status, events)


def _unfinished(
    status: RunStatus, events: Sequence[EventRecord | Event | UnknownEvent]
) -> list[InFlight]:
    parsed = [parse(e) if isinstance(e, EventRecord) else e for e in events]
    finished = {e.key for e in parsed if isinstance(e, ToolCalled)}
    waiting: set[str] = set()
    named_waiting = False
    for e in parsed:
        if isinstance(e, RunAwaitingApproval) and e.calls is not None:
            named_waiting = True
            waiting.update(c.key for c in e.calls)
    if status == "awaiting_approval" and not named_waiting:
        return []
    return [
        InFlight(e.ordinal, call.call_id, call.name, key)
        for e in parsed
        if isinstance(e, ModelCalled)
        for call in e.tools
        if (key := e.key_of(call)) not in finished and key not in waiting
    ]
