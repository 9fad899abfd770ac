"""How the run database is used: connection bound, how long to wait (for a free connection, and
for a database that went away), and the durability level.

Each setting has an environment variable, read when a database is opened, and a keyword of
`LocalEngine`. A value that does not parse is refused with the variable's name and what it takes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from .. import lazy_errors as errors

__all__ = [
    "DURABILITY_LEVELS",
    "ENV_DATABASE_RETRY_SECONDS",
    "ENV_DATABASE_URL",
    "ENV_DB_POOL_SIZE",
    "ENV_DB_TIMEOUT",
    "ENV_DURABILITY",
    "Durability",
    "StoreSettings",
]

# Where the runs are (read by store.database); here, with the other variables, so that the CLI
# can name it in its help without importing the database layer.
ENV_DATABASE_URL = "RUNPLANE_DATABASE_URL"

Durability = Literal["normal", "full"]
DURABILITY_LEVELS: tuple[Durability, ...] = ("normal", "full")

ENV_DB_POOL_SIZE = "RUNPLANE_DB_POOL_SIZE"
ENV_DB_TIMEOUT = "RUNPLANE_DB_TIMEOUT"
ENV_DURABILITY = "RUNPLANE_DURABILITY"
ENV_DATABASE_RETRY_SECONDS = "RUNPLANE_DATABASE_RETRY_SECONDS"

DEFAULT_POOL_SIZE = 8
# A step's write takes a millisecond or less; a run waits this long for a connection, for another
# process's write lock, or for one statement, before it fails. Long enough that load never fails
# a run, short enough that a database that went away is reported instead of waited on forever.
DEFAULT_TIMEOUT = 120.0
# A database that cannot be reached (restarting, failing over, the link down) is tried again,
# with backoff, this long before a run fails: a restart takes seconds, a failover up to a minute.
# The same bound as a program's for its server (RUNPLANE_SERVER_RETRY_SECONDS).
DEFAULT_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class StoreSettings:
    """`pool_size`: connections per event loop (PostgreSQL) or per process (SQLite); runs beyond
    it wait for one. `timeout`: seconds any wait may take. `durability`: `normal` keeps every
    committed step across a killed process; `full` also across an OS crash or power loss.
    `retry_seconds`: how long a database that cannot be reached (PostgreSQL restarting) is
    tried again before the run fails; 0 fails at once."""

    pool_size: int = DEFAULT_POOL_SIZE
    timeout: float = DEFAULT_TIMEOUT
    durability: Durability = "normal"
    retry_seconds: float = DEFAULT_RETRY_SECONDS

    def __post_init__(self) -> None:
        if isinstance(self.pool_size, bool) or not isinstance(self.pool_size, int):
            raise ValueError(f"pool_size must be an int, got {self.pool_size!r}")
        if self.pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {self.pool_size}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout}")
        if not 0 <= self.retry_seconds < float("inf"):
            raise ValueError(f"retry_seconds must be 0 or more seconds, got {self.retry_seconds}")
        if self.durability not in DURABILITY_LEVELS:
            raise ValueError(
                f"durability must be one of {', '.join(DURABILITY_LEVELS)}, got {self.durability!r}"
            )

    @classmethod
    def from_env(
        cls,
        *,
        pool_size: int | None = None,
        timeout: float | None = None,
        durability: Durability | None = None,
        retry_seconds: float | None = None,
    ) -> StoreSettings:
        """Explicit values win; else the environment; else the defaults."""
        return cls(
            pool_size=pool_size if pool_size is not None else _env_int(ENV_DB_POOL_SIZE),
            timeout=timeout if timeout is not None else _env_float(ENV_DB_TIMEOUT),
            durability=durability if durability is not None else _env_durability(),
            retry_seconds=retry_seconds if retry_seconds is not None else _env_retry(),
        )


def _env_int(name: str) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return DEFAULT_POOL_SIZE
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise errors.DatabaseError(
            f"{name}={raw!r} is not a whole number of connections of at least 1"
        )
    return value


def _env_float(name: str) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise errors.DatabaseError(f"{name}={raw!r} is not a positive number of seconds")
    return value


def _env_retry() -> float:
    raw = os.environ.get(ENV_DATABASE_RETRY_SECONDS, "").strip()
    if not raw:
        return DEFAULT_RETRY_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise errors.DatabaseError(
            f"{ENV_DATABASE_RETRY_SECONDS}={raw!r} is not a number of seconds of 0 or more; "
            f"unset it for {DEFAULT_RETRY_SECONDS:g}"
        )
    return value


def _env_durability() -> Durability:
    raw = os.environ.get(ENV_DURABILITY, "").strip().lower()
    if not raw:
        return "normal"
    for level in DURABILITY_LEVELS:
        if raw == level:
            return level
    raise errors.DatabaseError(
        f"{ENV_DURABILITY}={raw!r} is not a durability level; use one of "
        f"{', '.join(DURABILITY_LEVELS)}"
    )
