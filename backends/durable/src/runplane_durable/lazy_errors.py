"""The durable backend's errors for modules on the CLI's read path, loaded on first use.

The classes in `errors` subclass the SDK's `AgentsException` on purpose (the SDK lets those escape
a tool as they are), so defining them imports the SDK. The store, `local` and `identity` name them
through this module instead (`errors.DatabaseError`, looked up when raised or caught), so that
`runplane runs list` reads the database without importing the SDK. They are the same classes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        AgentRefError,
        ApprovalConflictError,
        ApprovalNotFoundError,
        DatabaseError,
        DurableError,
        ForkSessionError,
        ForkStepError,
        JournalSerializationError,
        ReplayDivergenceError,
        RunCancelledError,
        RunFailedError,
        RunFinishedError,
        RunInputMismatchError,
        RunLeasedError,
        RunNotFoundError,
        RunStateInvalidError,
        SchemaVersionError,
        ServerError,
        TaskLeaseLostError,
        TaskNotFoundError,
        UnstorableNameError,
        error_from_wire,
    )

__all__ = [
    "AgentRefError",
    "ApprovalConflictError",
    "ApprovalNotFoundError",
    "DatabaseError",
    "DurableError",
    "ForkSessionError",
    "ForkStepError",
    "JournalSerializationError",
    "ReplayDivergenceError",
    "RunCancelledError",
    "RunFailedError",
    "RunFinishedError",
    "RunInputMismatchError",
    "RunLeasedError",
    "RunNotFoundError",
    "RunStateInvalidError",
    "SchemaVersionError",
    "ServerError",
    "TaskLeaseLostError",
    "TaskNotFoundError",
    "UnstorableNameError",
    "error_from_wire",
]


def __getattr__(name: str) -> Any:
    value = getattr(importlib.import_module(f"{__package__}.errors"), name)
    globals()[name] = value
    return value
