"""What a run session needs of a database connection: its transactions, one at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..session import MUST_WAIT, MustWait  # one sentinel for the session and its writers

__all__ = ["MUST_WAIT", "MustWait", "Transactions"]

T = TypeVar("T")


class Transactions(Protocol):
    """Runs `sql.py` functions on one connection, one transaction at a time."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T: ...

    def call_now(self, fn: Callable[..., T], *args: Any) -> T | MustWait:
        """Run it at once on this thread if that cannot block, else return MUST_WAIT.

        Nothing can interrupt a transaction that never yields to the event loop, so a caller
        needs no task or shield around it.
        """

    async def close(self) -> None: ...
