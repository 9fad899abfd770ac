"""Run identity: `with run_id("order-42"):` names the runs started inside it.

The ids of the runs a program starts: the one it asked for, a new one, or the derived id of a
run a durable run's tool starts. The names themselves are checked and built in `names.py`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from ..names import MAX_RUN_ID, check_run_id, fitted, new_run_id
from ..records import RunStatus
from .active import CLAIMING, LAST_RUN_ID, NAMED_RUN_ID, REQUESTED_RUN_ID

__all__ = [
    "NestedRunId",
    "claim_status_for",
    "claiming",
    "last_run_id",
    "nested_run_id",
    "reserve_run_id",
    "run_id",
    "take_requested_run_id",
]


class NestedRunId(str):
    """The id of a run a durable run's tool started: its parent resumes it by starting it
    again, so it is never a worker's to take over on its own."""


class _NestedRunIds(str):
    """The id of the first run a tool call starts; each later one it starts takes the next id.

    A tool may start more than one run (a function tool consulting two agents): each is a run
    of its own, numbered in the order the tool starts them, so a replay derives the same ids.
    """

    def __new__(cls, first: str) -> _NestedRunIds:
        ids = super().__new__(cls, first)
        ids._taken = itertools.count(1)  # next() on a count is atomic: threads may share it
        return ids

    _taken: itertools.count[int]

    def take(self) -> NestedRunId:
        n = next(self._taken)
        return NestedRunId(str(self) if n == 1 else fitted(f"{self}#{n}", MAX_RUN_ID))


def nested_run_id(parent: str, key: str) -> str:
    """The id of the first run started by tool call `key` of run `parent` (`Agent.as_tool`);
    requested through `REQUESTED_RUN_ID`, it gives the n-th run the tool starts `ID#n`."""
    return _NestedRunIds(fitted(f"{parent}/{key}", MAX_RUN_ID))


@contextmanager
def run_id(value: str | None = None) -> Iterator[str]:
    """Runs started inside get this id: a new one runs, an unfinished one resumes, a finished
    one returns its stored result. Yields the id (a fresh one when `value` is None)."""
    chosen = check_run_id(value if value is not None else new_run_id())
    token = REQUESTED_RUN_ID.set(chosen)
    named = NAMED_RUN_ID.set(chosen if value is not None else None)
    try:
        yield chosen
    finally:
        NAMED_RUN_ID.reset(named)
        REQUESTED_RUN_ID.reset(token)


@contextmanager
def reserve_run_id() -> Iterator[str]:
    """Fix now the id of the run started next in this context: the requested one, the next id
    of a tool call's nested runs, or a new one.

    For observers (`RunnerBackend.reserve_run_id`): the run started inside gets this very id.
    Whether the id counts as one the program chose (NAMED_RUN_ID) is left as it was.
    """
    chosen = take_requested_run_id()
    token = REQUESTED_RUN_ID.set(chosen)
    try:
        yield chosen
    finally:
        REQUESTED_RUN_ID.reset(token)


def take_requested_run_id() -> str:
    """The id for a run starting now: the requested one, or a fresh one."""
    requested = REQUESTED_RUN_ID.get()
    if isinstance(requested, _NestedRunIds):
        requested = requested.take()
    chosen = check_run_id(requested) if requested is not None else new_run_id()
    LAST_RUN_ID.set(chosen)
    return chosen


def last_run_id() -> str | None:
    """The id of the last durable run started from this context (thread or task)."""
    return LAST_RUN_ID.get()


@contextmanager
def claiming(run_id: str, status: RunStatus) -> Iterator[None]:
    """Opening run `run_id` inside is a worker's claim of it in `status`, the one
    `claimable_runs` listed it in (`RunSpec.claim_status`): finished since, it is refused."""
    token = CLAIMING.set((run_id, status))
    try:
        yield
    finally:
        CLAIMING.reset(token)


def claim_status_for(run_id: str) -> RunStatus | None:
    """The status run `run_id` is claimed in here, if a worker claims it (runs it starts,
    with ids of their own, are no claims)."""
    claim = CLAIMING.get()
    return claim[1] if claim is not None and claim[0] == run_id else None
