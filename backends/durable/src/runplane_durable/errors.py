"""Errors of the durable backend. Each says what happened and what to do; none loses data."""

from __future__ import annotations

from agents.exceptions import AgentsException

from runplane import RunplaneError

__all__ = [
    "DatabaseError",
    "DurableError",
    "JournalSerializationError",
    "ReplayDivergenceError",
    "RunInputMismatchError",
    "RunLeasedError",
    "RunNotFoundError",
    "SchemaVersionError",
]


class DurableError(RunplaneError):
    """Base class for the durable backend's own errors."""


class DatabaseError(DurableError):
    """The run database cannot be opened, read or written."""


class SchemaVersionError(DatabaseError):
    """The database was written by a newer runplane-durable than this one."""


class RunNotFoundError(DurableError, LookupError):
    """No run with this id exists in the database."""


class RunLeasedError(DurableError):
    """Another live process holds this run's lease: two executions of one run are refused."""


class RunInputMismatchError(DurableError):
    """A run id was reused with a different starting agent or input."""


class ReplayDivergenceError(AgentsException, DurableError):
    """A replayed run asked for something other than what its journal recorded.

    Raised instead of calling the model: continuing would mix two different histories.
    """


class JournalSerializationError(AgentsException, DurableError):
    """A tool output or final output the journal cannot store."""
