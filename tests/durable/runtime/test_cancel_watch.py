"""The cancel watcher: what it asks the engine, and when it acts, with a session stand-in."""

from __future__ import annotations

import asyncio
from typing import Any

from runplane_durable.records import CancelMode
from runplane_durable.runtime.cancel import Stopper, watch


class _Session:
    """A session whose own writes learnt of an "after_turn" request; the engine now holds
    `stored` (the request made "immediate" from another process)."""

    def __init__(self, seen: CancelMode | None, stored: CancelMode | None) -> None:
        self.cancel_requested = seen
        self.stored = stored
        self.polls = 0
        self.record: Any = type("R", (), {"id": "r"})()

    async def poll_cancel(self, *, fresh_within: float = 0.0) -> CancelMode | None:
        self.polls += 1  # never answered a write: every tick reads
        self.cancel_requested = self.stored
        return self.stored


def test_an_after_turn_request_made_immediate_later_is_carried_out_at_the_next_tick() -> None:
    """Once the session has seen "after_turn", the watcher keeps asking: a later "immediate"
    (runplane runs cancel again, without --after-turn) stops the run within a tick, not at the
    run's next write or heartbeat (10 s with the default lease)."""

    async def go() -> tuple[int, bool, CancelMode | None]:
        session = _Session(seen="after_turn", stored="immediate")
        task = asyncio.ensure_future(asyncio.sleep(60))  # the SDK's loop, as the watcher sees it
        stopper = Stopper(task=task)
        await asyncio.wait_for(watch(session, stopper, 0.01), timeout=5)  # type: ignore[arg-type]
        await asyncio.gather(task, return_exceptions=True)
        return session.polls, task.cancelled(), stopper.mode

    polls, cancelled, mode = asyncio.run(go())
    assert polls >= 1
    assert cancelled
    assert mode == "immediate"


def test_a_session_that_saw_immediate_needs_no_read() -> None:
    async def go() -> int:
        session = _Session(seen="immediate", stored="immediate")
        task = asyncio.ensure_future(asyncio.sleep(60))
        await asyncio.wait_for(watch(session, Stopper(task=task), 0.01), timeout=5)  # type: ignore[arg-type]
        await asyncio.gather(task, return_exceptions=True)
        return session.polls

    assert asyncio.run(go()) == 0
