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
    "UnstorableNameError",
]


class DurableError(RunplaneError, AgentsException):
    """Base class for the durable backend's own errors.

    An `AgentsException`, because the SDK lets those raised while a tool runs pass through as
    they are, and wraps any other in `UserError("Error running tool ...")`: a lost lease or a
    failed write must reach the caller as itself.
    """


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


class UnstorableNameError(DurableError, ValueError):
    """A run id or agent name that not every run database can store (refused on all of them)."""


class ReplayDivergenceError(DurableError):
    """A replayed run asked for something other than what its journal recorded.

    Raised instead of calling the model: continuing would mix two different histories.
    """


class JournalSerializationError(DurableError):
    """A tool output or final output the journal cannot store.

    `path` says where in the value (`result["when"]`), `leaf` the type found there, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, leaf: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.leaf = leaf
