"""Where a conversation's history lives: the backend's own sessions, else one in memory; and
the turns of a conversation a backend keeps (so a host started again resumes a cut turn)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agents import Session, SQLiteSession
from agents.items import TResponseInputItem

__all__ = [
    "SupportsConversationTurns",
    "SupportsConversations",
    "UnfinishedTurn",
    "conversation_session",
    "unfinished_turn",
]


@runtime_checkable
class SupportsConversations(Protocol):
    """The optional part of the backend contract for hosts: a backend that stores conversations.

    `conversation_session(conversation_id)` returns the SDK `Session` holding that conversation's
    history (the durable backend's is stored with its runs, so the conversation outlives the
    process). The same id must give the same history, in this process and the next.
    """

    def conversation_session(self, conversation_id: str) -> Session: ...


def conversation_session(backend: object, conversation_id: str | None) -> tuple[Session, bool]:
    """The session for a conversation, and whether the host owns it (and closes it).

    The backend's when it provides them; else the SDK's SQLiteSession in memory, which lives as
    long as the host context (a new id each time when none is given).
    """
    conversation_id = conversation_id or f"conversation-{uuid.uuid4().hex}"
    if isinstance(backend, SupportsConversations):
        return backend.conversation_session(conversation_id), False
    return SQLiteSession(conversation_id), True


@runtime_checkable
class SupportsConversationTurns(Protocol):
    """The optional part of the backend contract for hosts whose turns outlive the process.

    `conversation_turn(conversation_id, n)` is a context manager: the run started inside is
    turn `n` of the conversation, under an id the backend derives from both, so running the
    turn again (after the host was killed in it) resumes that run. `conversation_turns(id)`
    returns the turns' runs so far, turn 0 first: records with `id`, `status` and the `input`
    as the backend stores it ({"text": ...} or {"items": [...]}).
    """

    def conversation_turn(self, conversation_id: str, n: int) -> AbstractContextManager[str]: ...

    async def conversation_turns(self, conversation_id: str) -> Sequence[Any]: ...


@dataclass(frozen=True)
class UnfinishedTurn:
    """A turn cut off when its host stopped (killed mid-turn): its number, run id and prompt."""

    number: int
    run_id: str
    prompt: str | list[TResponseInputItem]


def unfinished_turn(turns: Sequence[Any]) -> UnfinishedTurn | None:
    """The last turn, if it was cut off: still `running` (its process gone), with its prompt."""
    if not turns or getattr(turns[-1], "status", None) != "running":
        return None
    last = turns[-1]
    stored = getattr(last, "input", None)
    if isinstance(stored, dict) and isinstance(stored.get("text"), str):
        prompt: str | list[TResponseInputItem] = stored["text"]
    elif isinstance(stored, dict) and isinstance(stored.get("items"), list):
        prompt = stored["items"]
    else:  # a turn the host context did not start (a RunState continued): nothing to resume
        return None
    return UnfinishedTurn(len(turns) - 1, str(last.id), prompt)
