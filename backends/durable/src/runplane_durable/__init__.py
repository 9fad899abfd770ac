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
    from .backend import DEFAULT_LEASE_SECONDS, DurableBackend
    from .engine import Engine, RunSession
    from .errors import (
        DatabaseError,
        DurableError,
        JournalSerializationError,
        ReplayDivergenceError,
        RunInputMismatchError,
        RunLeasedError,
        RunNotFoundError,
        SchemaVersionError,
        UnstorableNameError,
    )
    from .identity import last_run_id, run_id
    from .local import LocalEngine
    from .records import EventRecord, JournalRecord, RunRecord
    from .runner import Runner
    from .store.database import ENV_DATABASE_URL

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "ENV_DATABASE_URL",
    "DatabaseError",
    "DurableBackend",
    "DurableError",
    "Engine",
    "EventRecord",
    "JournalRecord",
    "JournalSerializationError",
    "LocalEngine",
    "ReplayDivergenceError",
    "RunInputMismatchError",
    "RunLeasedError",
    "RunNotFoundError",
    "RunRecord",
    "RunSession",
    "Runner",
    "SchemaVersionError",
    "UnstorableNameError",
    "last_run_id",
    "run_id",
]

_LAZY = {
    "DEFAULT_LEASE_SECONDS": "backend",
    "DurableBackend": "backend",
    "Engine": "engine",
    "RunSession": "engine",
    "DatabaseError": "errors",
    "DurableError": "errors",
    "JournalSerializationError": "errors",
    "ReplayDivergenceError": "errors",
    "RunInputMismatchError": "errors",
    "RunLeasedError": "errors",
    "RunNotFoundError": "errors",
    "SchemaVersionError": "errors",
    "UnstorableNameError": "errors",
    "last_run_id": "identity",
    "run_id": "identity",
    "LocalEngine": "local",
    "EventRecord": "records",
    "JournalRecord": "records",
    "RunRecord": "records",
    "Runner": "runner",
    "ENV_DATABASE_URL": "store.database",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
