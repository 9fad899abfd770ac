"""Durable conversations: an SDK `Session` kept in the run database, and the ids of its turns.

A conversation is a sequence of durable runs (its turns) sharing one `DurableSession`. Each
turn's run id is derived from the conversation id and the turn's number
(`conversation_turn_id`), so a host started again after a crash runs its turns under the same
ids: the finished ones replay from their journals (they touch the session no more), and the one
that was cut off resumes where it stopped (its session reads and writes are journaled, see
`session_steps.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.items import TResponseInputItem
from agents.memory import SessionABC, SessionSettings

from ..engine import Engine, open_engine
from ..names import MAX_RUN_ID, check_session_id, fitted
from .active import REQUESTED_RUN_ID
from .identity import run_id

__all__ = ["DurableSession", "conversation_turn", "conversation_turn_id"]


def conversation_turn_id(conversation_id: str, n: int) -> str:
    """The run id of turn `n` (0, 1, ...) of conversation `conversation_id`:
    `CONVERSATION/turn-N`, a long conversation id shortened with a hash so the id always fits
    (deterministic: the same turn gets the same id in every process)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"a turn number is 0, 1, 2, ...; got {n!r}")
    return fitted(f"{check_session_id(conversation_id)}/turn-{n}", MAX_RUN_ID)


@contextmanager
def conversation_turn(conversation_id: str, n: int) -> Iterator[str]:
    """Runs started inside are turn `n` of the conversation (yields its run id). Turn 0 counts
    as an id the program chose (`run_id("...")`: a new one is logged with its database, so a
    conversation meant to resume from another database is noticed); later turns start new
    runs as a matter of course, and say nothing."""
    chosen = conversation_turn_id(conversation_id, n)
    if n == 0:
        with run_id(chosen):
            yield chosen
        return
    token = REQUESTED_RUN_ID.set(chosen)
    try:
        yield chosen
    finally:
        REQUESTED_RUN_ID.reset(token)


class DurableSession(SessionABC):
    """An SDK `Session` stored in the durable database, beside the runs that use it.

    `engine`: where it is kept; by default the one `open_engine()` chooses, as for runs
    (RUNPLANE_SERVER_URL, RUNPLANE_DATABASE_URL, else the nearest `.runplane/`). Items are the
    SDK's input items (JSON data). Every write is one transaction, taken once per key, so a
    request sent again (a server's lost answer) or a resumed run's last write made again never
    adds its items twice.
    """

    def __init__(
        self,
        session_id: str,
        *,
        engine: Engine | None = None,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = check_session_id(session_id)
        self.session_settings = session_settings
        self._engine = engine

    def __repr__(self) -> str:
        return f"DurableSession({self.session_id!r}, engine={self.engine!r})"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = open_engine()
        return self._engine

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest `limit` items (default: the session settings' limit, else all), oldest
        first."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        items: list[Any] = await self.engine.session_items(self.session_id, limit=limit)
        return items

    async def add_items(
        self, items: list[TResponseInputItem], *, write_key: str | None = None
    ) -> None:
        """Append `items`; `write_key` makes the write idempotent (a fresh key by default, so
        only a retry of this very call is recognised)."""
        key = write_key if write_key is not None else uuid.uuid4().hex
        await self.engine.add_session_items(self.session_id, list(items), write_key=key)

    async def pop_item(self) -> TResponseInputItem | None:
        item: TResponseInputItem | None = await self.engine.pop_session_item(self.session_id)
        return item

    async def clear_session(self) -> None:
        await self.engine.clear_session(self.session_id)
