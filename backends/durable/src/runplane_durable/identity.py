"""Run identity: `with run_id("order-42"):` names the runs started inside it.

Also where every name a run is stored under is checked or built, so that SQLite and PostgreSQL
accept exactly the same ones: PostgreSQL enforces column lengths and refuses NUL, SQLite does
neither, and neither can encode a lone surrogate.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from . import lazy_errors as errors
from .active import LAST_RUN_ID, NAMED_RUN_ID, REQUESTED_RUN_ID

__all__ = [
    "MAX_AGENT_NAME",
    "MAX_JOURNAL_KEY",
    "MAX_RUN_ID",
    "check_agent_name",
    "check_run_id",
    "last_run_id",
    "nested_run_id",
    "new_run_id",
    "reserve_run_id",
    "run_id",
    "take_requested_run_id",
    "tool_key",
]

# The widths of the columns these are stored in (store/schema.py).
MAX_RUN_ID = 200
MAX_AGENT_NAME = 500
MAX_JOURNAL_KEY = 300
_HASH_CHARS = 32  # 128 bits of the full name, when it has to be shortened


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex}"


def _unstorable(text: str) -> str | None:
    """Why a database cannot store `text` as it is, or None."""
    if "\x00" in text:
        return "it contains a NUL character, which PostgreSQL cannot store"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "it contains a lone surrogate, which is not text any database can store"
    return None


def check_run_id(value: object) -> str:
    """`value` if it can name a run on every database; else `UnstorableNameError` (a ValueError)."""
    why = None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_RUN_ID:
        why = f"a run id must be a non-empty string of at most {MAX_RUN_ID} characters"
    elif (reason := _unstorable(value)) is not None:
        why = f"this run id cannot be stored: {reason}"
    if why is not None:
        raise errors.UnstorableNameError(what="run id", value=_shown(value), reason=why)
    assert isinstance(value, str)
    return value


def check_agent_name(name: str) -> str:
    """`name` if a run's starting agent can be stored under it on every database."""
    why = _unstorable(name)
    if why is None and len(name) > MAX_AGENT_NAME:
        why = f"it is longer than {MAX_AGENT_NAME} characters"
    if why is not None:
        raise errors.UnstorableNameError(what="agent name", value=_shown(name), reason=why)
    return name


def _shown(value: object) -> str:
    text = ascii(value)  # storable and printable: NUL and surrogates come out as escapes
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters as written)"


def _fitted(full: str, limit: int) -> str:
    """`full` if it fits in `limit` and is storable; else a readable head and a hash of all of it.

    Deterministic, so a resumed run derives the very same name again.
    """
    if len(full) <= limit and _unstorable(full) is None:
        return full
    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    head = full[: limit - _HASH_CHARS - 1]
    if _unstorable(head) is not None:
        head = head.encode("ascii", "replace").decode("ascii").replace("\x00", "?")
    return f"{head}~{digest}"


def tool_key(ordinal: int, call_id: str) -> str:
    """The journal key of a tool call: model calls completed before it, and its call id.

    The call id comes from the model, so it may be longer than the column or hold NUL.
    """
    return _fitted(f"{ordinal}:{call_id}", MAX_JOURNAL_KEY)


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

    def take(self) -> str:
        n = next(self._taken)
        return str(self) if n == 1 else _fitted(f"{self}#{n}", MAX_RUN_ID)


def nested_run_id(parent: str, key: str) -> str:
    """The id of the first run started by tool call `key` of run `parent` (`Agent.as_tool`);
    requested through `REQUESTED_RUN_ID`, it gives the n-th run the tool starts `ID#n`."""
    return _NestedRunIds(_fitted(f"{parent}/{key}", MAX_RUN_ID))


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
