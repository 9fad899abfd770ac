"""Run identity: `with run_id("order-42"):` names the runs started inside it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from .active import LAST_RUN_ID, REQUESTED_RUN_ID

__all__ = ["last_run_id", "new_run_id", "run_id", "take_requested_run_id"]

MAX_RUN_ID = 200


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


@contextmanager
def run_id(value: str | None = None) -> Iterator[str]:
    """Runs started inside get this id: a new one runs, an unfinished one resumes, a finished
    one returns its stored result. Yields the id (a fresh one when `value` is None)."""
    chosen = value if value is not None else new_run_id()
    if not isinstance(chosen, str) or not chosen.strip() or len(chosen) > MAX_RUN_ID:
        raise ValueError(
            f"a run id must be a non-empty string of at most {MAX_RUN_ID} characters, "
            f"got {chosen!r}"
        )
    token = REQUESTED_RUN_ID.set(chosen)
    try:
        yield chosen
    finally:
        REQUESTED_RUN_ID.reset(token)


def take_requested_run_id() -> str:
    """The id for a run starting now: the requested one, or a fresh one."""
    requested = REQUESTED_RUN_ID.get()
    chosen = requested if requested is not None else new_run_id()
    LAST_RUN_ID.set(chosen)
    return chosen


def last_run_id() -> str | None:
    """The id of the last durable run started from this context (thread or task)."""
    return LAST_RUN_ID.get()
