"""runplane's durable backend: `from runplane_durable import Runner` and runs survive crashes.

from runplane_durable import Runner, run_id

with run_id("order-42"):          # optional: name the run to resume it after a crash
    result = Runner.run_sync(agent, "Where is my order?")
"""

from __future__ import annotations

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
