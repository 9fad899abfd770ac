"""runplane's durable backend: `from runplane_durable import Runner` and runs survive crashes.

from runplane_durable import Runner, run_id

with run_id("order-42"):          # optional: name the run to resume it after a crash
    result = Runner.run_sync(agent, "Where is my order?")

Every name is imported on first use: the `runplane` entry point imports this package (its
`plugin` module), and `runplane runs list` must reach the database without importing the Agents
SDK, which the backend, the runner and the error classes need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine, RunSession
    from .errors import (
        AgentRefError,
        DatabaseError,
        DurableError,
        ForkSessionError,
        ForkStepError,
        JournalSerializationError,
        RemoteContextError,
        ReplayDivergenceError,
        RunCancelledError,
        RunFailedError,
        RunFinishedError,
        RunInputMismatchError,
        RunLeasedError,
        RunNotFoundError,
        SchemaVersionError,
        ServerError,
        TaskLeaseLostError,
        TaskNotFoundError,
        UnstorableNameError,
        error_from_wire,
    )
    from .local.database import ENV_DATABASE_URL
    from .local.engine import LocalEngine
    from .records import EventRecord, JournalEntry, JournalRecord, RunRecord
    from .remote_engine import ENV_SERVER_URL, RemoteEngine
    from .runtime.backend import DEFAULT_LEASE_SECONDS, DurableBackend
    from .runtime.conversation import DurableSession, conversation_turn_id
    from .runtime.handle import RunHandle
    from .runtime.identity import last_run_id, run_id
    from .runtime.remote_tools import RemoteToolError, remote, remote_tools
    from .runtime.runner import Runner

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "ENV_DATABASE_URL",
    "ENV_SERVER_URL",
    "AgentRefError",
    "DatabaseError",
    "DurableBackend",
    "DurableError",
    "DurableSession",
    "Engine",
    "EventRecord",
    "ForkSessionError",
    "ForkStepError",
    "JournalEntry",
    "JournalRecord",
    "JournalSerializationError",
    "LocalEngine",
    "RemoteContextError",
    "RemoteEngine",
    "RemoteToolError",
    "ReplayDivergenceError",
    "RunCancelledError",
    "RunFailedError",
    "RunFinishedError",
    "RunHandle",
    "RunInputMismatchError",
    "RunLeasedError",
    "RunNotFoundError",
    "RunRecord",
    "RunSession",
    "Runner",
    "SchemaVersionError",
    "ServerError",
    "TaskLeaseLostError",
    "TaskNotFoundError",
    "UnstorableNameError",
    "conversation_turn_id",
    "error_from_wire",
    "last_run_id",
    "remote",
    "remote_tools",
    "run_id",
]

_LAZY = {
    "DEFAULT_LEASE_SECONDS": "runtime.backend",
    "DurableBackend": "runtime.backend",
    "DurableSession": "runtime.conversation",
    "conversation_turn_id": "runtime.conversation",
    "Engine": "engine",
    "RunSession": "engine",
    "AgentRefError": "errors",
    "DatabaseError": "errors",
    "DurableError": "errors",
    "ForkSessionError": "errors",
    "ForkStepError": "errors",
    "JournalSerializationError": "errors",
    "ReplayDivergenceError": "errors",
    "RunCancelledError": "errors",
    "RunFailedError": "errors",
    "RunHandle": "runtime.handle",
    "RunFinishedError": "errors",
    "RunInputMismatchError": "errors",
    "RunLeasedError": "errors",
    "RunNotFoundError": "errors",
    "SchemaVersionError": "errors",
    "ServerError": "errors",
    "UnstorableNameError": "errors",
    "error_from_wire": "errors",
    "RemoteContextError": "errors",
    "TaskLeaseLostError": "errors",
    "TaskNotFoundError": "errors",
    "RemoteToolError": "runtime.remote_tools",
    "remote": "runtime.remote_tools",
    "remote_tools": "runtime.remote_tools",
    "last_run_id": "runtime.identity",
    "run_id": "runtime.identity",
    "LocalEngine": "local.engine",
    "RemoteEngine": "remote_engine",
    "ENV_SERVER_URL": "remote_engine",
    "EventRecord": "records",
    "JournalEntry": "records",
    "JournalRecord": "records",
    "RunRecord": "records",
    "Runner": "runtime.runner",
    "ENV_DATABASE_URL": "local.database",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
