"""A durable run's `session=` reads and writes, journaled: a resumed run sees what the first saw.

The SDK reads a run's session at its start (and when it rewinds a retried turn), and appends to
it at the start and after each turn: the session keeps its own history, outside the journal. So
a run killed after it saved a turn would, replayed from the start, read that turn back as part
of its input, ask the model something other than what the journal recorded, and add the turn's
items a second time. Here each read and write the SDK makes (through its three helpers, for any
kind of Session) is a step of the run's journal, keyed by its ordinal among the run's session
steps:

- a read is journaled with the items it returned (behind later steps, not waited for: any write
  that depends on it commits after it); replayed, it returns them without asking the session;
- a write is journaled *before* it is made (waited for), with digests of the session's last
  items as they were just before it; replayed, it is not made again. Only a write with nothing
  journaled after it may not have reached the session (the process died between the journal's
  commit and the session's): it is reconciled by reading the tail again, made if the tail is as
  it was before, skipped if it already holds the items. A `DurableSession` needs no tail: its
  writes carry a key the database makes idempotent, so the last one is sent again under it.

A finished run's replay never touches the session: every step comes from the journal. A run
resumed from an approval snapshot reads and writes its session anew from the SDK's state, so its
steps are keyed apart (by the snapshot's model calls, `step_key`) and replayed among themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from .. import lazy_errors as errors
from ..records import JournalEntry, JournalRecord
from ..serde import dump_value, load_value
from . import sdk_internals as sdk
from .active import ACTIVE, ActiveRun

__all__ = ["install", "restore", "write_key"]

log = logging.getLogger("runplane_durable")

# Items read before a pop: enough to tell afterwards whether the pop was made.
_POP_WINDOW = 3
_DIGEST_CHARS = 32


def write_key(run_id: str, step: str) -> str:
    """The key of a run's session write (its journal key): the same in every attempt."""
    return f"{run_id}#session:{step}"


def step_key(segment: int | str, ordinal: int) -> str:
    """The journal key of session step `ordinal` of the run's stretch `segment` (0 until the
    run first stops for approval): "3", or "2:3" past a snapshot of 2 model calls ("2.1:3" in
    a continuation after a failed one, `ActiveRun.begin_session_segment`)."""
    return str(ordinal) if segment == 0 else f"{segment}:{ordinal}"


def _plain(item: Any) -> Any:
    dump = getattr(item, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_unset=True)
    return item


def digest(item: Any) -> str:
    """An item's content digest, as any session gives it back (a dict, or a pydantic item)."""
    text = json.dumps(_plain(item), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_CHARS]


def _digests(items: Sequence[Any]) -> list[str]:
    return [digest(i) for i in items]


def _encode(items: Any) -> Any:
    return dump_value(items, what="a session item")


def _limit_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | str | None:
    limit = args[0] if args else kwargs.get("limit", "default")
    return limit if limit is None or isinstance(limit, int) else "default"


def _describe(payload: dict[str, Any]) -> str:
    op = payload["op"]
    if op == "get":
        return f"a read of the session (limit {payload['limit']})"
    if op == "add":
        return f"a write of {len(payload['items'])} item(s) to the session"
    return "a pop of the session's last item"


class _Steps:
    """The session steps of one run, as its execution makes them."""

    def __init__(self, active: ActiveRun) -> None:
        self.active = active

    async def recorded(self, payload: dict[str, Any]) -> tuple[JournalEntry | None, bool]:
        """The journaled step this one replays (checked against what is done now) and whether
        it is the journal's last entry (a write that may not have reached the session); (None,
        False) for a live step."""
        session = await self.active.session()
        ordinal = self.active.session_ordinal
        steps = self.active.sessions
        if ordinal >= len(steps):
            if session.read_only:
                raise errors.ReplayDivergenceError(
                    run_id=session.record.id,
                    kind="session",
                    step=ordinal + 1,
                    requested=_describe(payload),
                    what_changed="The finished run never made this session step.",
                )
            return None, False
        entry = steps[ordinal]
        recorded = entry.payload
        same = recorded["op"] == payload["op"] and all(
            recorded.get(k) == v for k, v in payload.items() if k in ("limit", "items")
        )
        if not same:
            raise errors.ReplayDivergenceError(
                run_id=session.record.id,
                kind="session",
                step=ordinal + 1,
                requested=_describe(payload),
                recorded=_describe(recorded),
                what_changed="The run reads or writes its session differently than it did.",
            )
        self.active.session_ordinal += 1
        # Only a step with nothing journaled after it may have been cut off before the session
        # took it: every later step was made after it returned.
        newest = session.journal[-1].seq if session.journal else 0
        last = not session.read_only and isinstance(entry, JournalRecord) and entry.seq == newest
        return entry, last

    async def journal(self, payload: dict[str, Any], *, wait: bool) -> str:
        """Journal the next step; its key."""
        session = await self.active.session()
        segment = self.active.session_segment
        if segment:
            payload = {**payload, "segment": segment}
        key = step_key(segment, self.active.session_ordinal)
        entry = JournalEntry("session", key, None, payload)
        await session.check_lease()  # a holder that lost the run touches the session no more
        await session.append(journal=entry, wait=wait)
        self.active.sessions.append(entry)
        self.active.session_ordinal += 1
        return key

    async def run_id(self) -> str:
        return (await self.active.session()).record.id


async def _get_items(session: Any, *args: Any, **kwargs: Any) -> Any:
    original = sdk.SESSION_GETS[0].original
    active = ACTIVE.get()
    if active is None:
        return await original(session, *args, **kwargs)
    steps = _Steps(active)
    payload: dict[str, Any] = {"op": "get", "limit": _limit_of(args, kwargs)}
    entry, _ = await steps.recorded(payload)
    if entry is not None:
        return load_value(entry.payload["read"])
    items = await original(session, *args, **kwargs)
    # Not waited for: the writes that follow commit after it, and a crash before it commits
    # makes the resumed run read the session again, which no write of this run has changed.
    await steps.journal({**payload, "read": _encode(list(items))}, wait=False)
    return items


def _keyed(session: Any) -> bool:
    from .conversation import DurableSession

    return isinstance(session, DurableSession)


async def _tail(session: Any, limit: int, wrapper: Any) -> list[str]:
    if limit <= 0:
        return []
    tail = await sdk.SESSION_GETS[0].original(session, limit, wrapper=wrapper)
    return _digests(list(tail))


async def _add_items(session: Any, items: list[Any], *, wrapper: Any = None) -> None:
    original = sdk.SESSION_ADD.original
    active = ACTIVE.get()
    if active is None:
        return await original(session, items, wrapper=wrapper)  # type: ignore[no-any-return]
    steps = _Steps(active)
    payload: dict[str, Any] = {"op": "add", "items": _digests(items)}
    entry, last = await steps.recorded(payload)
    keyed = _keyed(session)
    if entry is not None:
        if last:
            await _settle_add(session, items, entry, keyed, wrapper, await steps.run_id())
        return None
    if keyed:
        key = await steps.journal(payload, wait=True)
        await session.add_items(items, write_key=write_key(await steps.run_id(), key))
        return None
    before = await _tail(session, len(items) + 1, wrapper)
    await steps.journal({**payload, "before": before}, wait=True)
    await original(session, items, wrapper=wrapper)
    return None


async def _settle_add(
    session: Any, items: list[Any], entry: JournalEntry, keyed: bool, wrapper: Any, run_id: str
) -> None:
    """Make the run's last journaled write if it never reached the session."""
    ordinal = int(entry.key.rpartition(":")[2])
    if keyed:
        await session.add_items(items, write_key=write_key(run_id, entry.key))
        return
    before: list[str] = entry.payload["before"]
    batch: list[str] = entry.payload["items"]
    if not batch:
        return
    expected = before + batch
    observed = await _tail(session, len(expected), wrapper)
    made = observed == expected
    # The window held the whole session when it came back shorter than asked for.
    unchanged = (
        observed == before if len(before) <= len(batch) else observed[-len(before) :] == before
    )
    if made:
        if unchanged:  # a repeating history: both fit; the write had all but surely been made
            log.warning(
                "run %s: session write #%d may or may not have reached the session (its history "
                "repeats); taking it as made",
                run_id,
                ordinal + 1,
            )
        return
    if unchanged:
        await sdk.SESSION_ADD.original(session, items, wrapper=wrapper)
        return
    raise errors.ReplayDivergenceError(
        run_id=run_id,
        kind="session",
        step=ordinal + 1,
        requested="a resume of the run",
        recorded=_describe(entry.payload),
        what_changed=(
            "The session changed outside the run since the run's last attempt wrote to it, so "
            "whether that write was made cannot be told."
        ),
    )


async def _pop_item(session: Any, *, wrapper: Any = None) -> Any:
    original = sdk.SESSION_POP.original
    active = ACTIVE.get()
    if active is None:
        return await original(session, wrapper=wrapper)
    steps = _Steps(active)
    entry, last = await steps.recorded({"op": "pop"})
    if entry is not None:
        popped = load_value(entry.payload["item"])
        if last:
            before: list[str] = entry.payload["before"]
            if before and await _tail(session, len(before), wrapper) == before:
                return await original(session, wrapper=wrapper)  # it never reached the session
        return popped
    tail = list(await sdk.SESSION_GETS[0].original(session, _POP_WINDOW, wrapper=wrapper))
    await steps.journal(
        {
            "op": "pop",
            "before": _digests(tail),
            "item": _encode(tail[-1] if tail else None),
        },
        wait=True,
    )
    return await original(session, wrapper=wrapper)


def install() -> None:
    """Put the journaling helpers in the SDK's place (under intercept's install lock)."""
    for seam in sdk.SESSION_GETS:
        seam.replace(_get_items)
    sdk.SESSION_ADD.replace(_add_items)
    sdk.SESSION_POP.replace(_pop_item)


def restore() -> None:
    for seam in (*sdk.SESSION_GETS, sdk.SESSION_ADD, sdk.SESSION_POP):
        seam.restore()
