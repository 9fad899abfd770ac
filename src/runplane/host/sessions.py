"""Where a conversation's history lives: the backend's own sessions, else one in memory."""

from __future__ import annotations

import uuid
from typing import Protocol, runtime_checkable

from agents import Session, SQLiteSession

__all__ = ["SupportsConversations", "conversation_session"]


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
