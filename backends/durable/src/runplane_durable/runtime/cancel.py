"""Cancel from any process, on the executing side: seeing a request and stopping the run the
SDK's way.

Another process asks with `Engine.cancel_run` (`runplane runs cancel`, `Runner.cancel`, the
API). The process executing the run learns of it from its own writes (each step returns the
run's `cancel_requested`) and, between steps, from a watcher that asks the engine every
RUNPLANE_CANCEL_POLL_SECONDS (default 1) unless a step answered within that time (so a run
stepping faster than that asks nothing more). Then a `Stopper` stops the run as the SDK's own
`RunResultStreaming.cancel(mode)` does: "immediate" at once (the model call or tools in flight
are cancelled, and never recorded as completed), "after_turn" once the current turn is done,
before the next model call. The backend records the run "cancelled" either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents import RunResultStreaming

from ..engine import RunSession
from ..events import CancelRequested, Event, UnknownEvent
from ..records import CancelMode

__all__ = [
    "DEFAULT_CANCEL_POLL_SECONDS",
    "ENV_CANCEL_POLL_SECONDS",
    "Stopper",
    "cancel_poll_seconds",
    "requested_by",
    "watch",
]

log = logging.getLogger("runplane_durable")

ENV_CANCEL_POLL_SECONDS = "RUNPLANE_CANCEL_POLL_SECONDS"
# How often an executing run asks whether another process wants it stopped: one primary-key
# read per run per second, and a request is carried out within about that long.
DEFAULT_CANCEL_POLL_SECONDS = 1.0


def cancel_poll_seconds(value: float | None = None) -> float:
    """`value`, else RUNPLANE_CANCEL_POLL_SECONDS, else 1.0; ValueError naming what is wrong."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"cancel_poll_seconds must be a positive number, got {value!r}")
        return float(value)
    raw = os.environ.get(ENV_CANCEL_POLL_SECONDS, "").strip()
    if not raw:
        return DEFAULT_CANCEL_POLL_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ValueError(
            f"{ENV_CANCEL_POLL_SECONDS}={raw!r} is not a positive number of seconds; it says "
            "how often a running run checks whether another process cancelled it (default "
            f"{DEFAULT_CANCEL_POLL_SECONDS:g})"
        )
    return seconds


@dataclass
class Stopper:
    """Stops one executing run when another process asks: through its stream's own `cancel`
    (a streamed run), or by cancelling the task running the SDK's loop (a run awaited)."""

    streamed: RunResultStreaming | None = None
    task: asyncio.Future[Any] | None = None
    mode: CancelMode | None = None  # the request being carried out
    _acted: set[str] = field(default_factory=set)

    @property
    def stopped(self) -> bool:
        """An "immediate" stop was made: nothing more to watch for."""
        return "immediate" in self._acted

    def request(self, mode: CancelMode) -> None:
        """Carry out `mode` as the watcher saw it: "immediate" now; "after_turn" at the end of
        the current turn (the SDK's stream does that itself; an awaited run stops at
        `before_model_call`)."""
        if mode in self._acted or self.stopped:
            return
        self._acted.add(mode)
        self.mode = "immediate" if "immediate" in (mode, self.mode) else mode
        if self.streamed is not None:
            self.streamed.cancel(mode)
        elif mode == "immediate" and self.task is not None:
            self.task.cancel()

    def before_model_call(self, mode: CancelMode | None) -> None:
        """At a turn boundary (a live model call is about to start; the turn before it is
        done): a pending request of either mode stops the run here, before the model is asked.
        """
        if mode is None:
            return
        self.mode = self.mode or mode
        self._acted.add("immediate")
        if self.streamed is not None:
            self.streamed.cancel("immediate")
        raise asyncio.CancelledError(f"cancelled from another process ({mode})")


async def watch(session: RunSession, stopper: Stopper, every: float) -> None:
    """Ask the engine every `every` seconds whether the run was cancelled, and act on it; runs
    until cancelled (the run ended) or an "immediate" request was carried out."""
    while not stopper.stopped:
        await asyncio.sleep(every)
        mode = session.cancel_requested  # what the run's own writes learnt meanwhile
        # An "after_turn" request may be made "immediate" later: keep asking until it is.
        if mode != "immediate":
            try:
                # A step answered within the last tick read the request already.
                mode = await session.poll_cancel(fresh_within=every)
            except Exception:  # a missed look is retried at the next tick
                log.warning("checking run %s for a cancel failed", session.record.id, exc_info=True)
                continue
        if mode is not None:
            stopper.request(mode)


def requested_by(events: Sequence[Event | UnknownEvent]) -> CancelRequested | None:
    """The last cancel request in a run's (parsed) events: who asked, and how."""
    for event in reversed(events):
        if isinstance(event, CancelRequested):
            return event
    return None
