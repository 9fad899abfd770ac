"""Every name a run is stored under, checked or built so SQLite and PostgreSQL accept the same.

PostgreSQL enforces column lengths and refuses NUL, SQLite does neither, and neither can encode
a lone surrogate. Plain functions, no SDK and no run scope: the store, the CLI and (later) the
server use them as the runtime does. `tool_key` is the one owner of the journal key of a tool
call.
"""

from __future__ import annotations

import hashlib
import uuid

from . import lazy_errors as errors

__all__ = [
    "MAX_AGENT_NAME",
    "MAX_JOURNAL_KEY",
    "MAX_RUN_ID",
    "check_agent_name",
    "check_run_id",
    "check_session_id",
    "check_text",
    "check_write_key",
    "fitted",
    "new_run_id",
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


def check_session_id(value: object) -> str:
    """`value` if it can name a durable session on every database (as a run id can); else
    `UnstorableNameError`."""
    why = None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_RUN_ID:
        why = f"a session id must be a non-empty string of at most {MAX_RUN_ID} characters"
    elif (reason := _unstorable(value)) is not None:
        why = f"this session id cannot be stored: {reason}"
    if why is not None:
        raise errors.UnstorableNameError(what="session id", value=_shown(value), reason=why)
    assert isinstance(value, str)
    return value


def check_write_key(value: object) -> str:
    """`value` if it can key a session write (`Engine.add_session_items`)."""
    key = check_text(value, "a session write key")
    if not key or len(key) > MAX_JOURNAL_KEY:
        raise errors.UnstorableNameError(
            what="a session write key",
            value=_shown(value),
            reason=f"a write key is a non-empty string of at most {MAX_JOURNAL_KEY} characters",
        )
    return key


def check_text(value: object, what: str) -> str:
    """`value` if it is a string every database can store in a column (a task's queue, tool,
    holder); else `UnstorableNameError` naming `what`."""
    why = "it is not a string" if not isinstance(value, str) else _unstorable(value)
    if why is not None:
        raise errors.UnstorableNameError(what=what, value=_shown(value), reason=why)
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


def fitted(full: str, limit: int) -> str:
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
    return fitted(f"{ordinal}:{call_id}", MAX_JOURNAL_KEY)
