"""What a fork of a run shares: the journal entries whose steps come before the fork's step.

A step is numbered as `runplane runs show` prints it: the seq of its event in the run's event
log. Each journal entry has its step's event (a model call's `model_call`, by ordinal; a tool's
`tool_call`, by key), so "the journal before step k" is the entries whose events come before k.
Written once here for every engine (a server's fork is its LocalEngine's). No SDK import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import lazy_errors as errors
from .events import ModelCalled, RunForked, ToolCalled, parse
from .records import EventRecord, JournalEntry, JournalRecord, RunRecord, RunSpec

__all__ = ["FORKED_FROM", "Fork", "fork_of", "forked_from", "step_of_entries"]

# The option a fork is stored with: {"run_id": the run forked, "at": the step}.
FORKED_FROM = "forked_from"


@dataclass(frozen=True)
class Fork:
    """A fork to create: its spec, the journal entries it starts with, its first event."""

    spec: RunSpec
    entries: list[JournalEntry]
    forked: RunForked


def step_of_entries(
    events: Sequence[EventRecord], journal: Sequence[JournalRecord]
) -> list[int | None]:
    """The step (event seq) of each journal entry, in journal order; None where the event log
    has no event for it: a session step (it has none), an entry of a journal a version without
    events wrote."""
    models: dict[str, int] = {}
    tools: dict[str, int] = {}
    for record in events:
        event = parse(record)
        if isinstance(event, ModelCalled):
            models.setdefault(str(event.ordinal), record.seq)
        elif isinstance(event, ToolCalled):
            tools.setdefault(event.key, record.seq)
    steps = {"model": models, "tool": tools}
    return [steps[e.kind].get(e.key) if e.kind in steps else None for e in journal]


def check_step(at: Any, run_id: str, last: int) -> int:
    """`at` if it is a step of the run (1 to `last`); else ForkStepError (a ValueError)."""
    if isinstance(at, bool) or not isinstance(at, int) or not 1 <= at <= last:
        shown = at if isinstance(at, int) and not isinstance(at, bool) else -1
        raise errors.ForkStepError(run_id=run_id, at=shown, last=last)
    return at


def fork_of(
    source: RunRecord,
    events: Sequence[EventRecord],
    journal: Sequence[JournalRecord],
    *,
    at: int,
    run_id: str,
    queue: str | None,
) -> Fork:
    """The fork of `source` at step `at` under `run_id`: the same agent, input and options (with
    `forked_from`), and the longest prefix of its journal whose steps come before `at`.
    ForkStepError for a step it does not have, ForkSessionError for a run that used a session."""
    last = max((e.seq for e in events), default=0)
    check_step(at, source.id, last)
    # The history a session gave the run's model calls is in its session steps, which a fork
    # could replay only with a session of its own to write its turns to: it has none.
    sessions = sum(1 for e in journal if e.kind == "session")
    if sessions:
        raise errors.ForkSessionError(run_id=source.id, session_steps=sessions)
    entries: list[JournalEntry] = []
    for record, step in zip(journal, step_of_entries(events, journal), strict=True):
        if step is None or step >= at:
            break
        entries.append(record.entry)
    spec = RunSpec(
        run_id=run_id,
        agent_name=source.agent_name,
        input=source.input,
        input_fingerprint=source.input_fingerprint,
        options={**source.options, FORKED_FROM: {"run_id": source.id, "at": at}},
        agent_ref=source.agent_ref,
        queue=queue,
    )
    forked = RunForked(
        from_run=source.id,
        at=at,
        model_calls=sum(1 for e in entries if e.kind == "model"),
        tool_outputs=sum(1 for e in entries if e.kind == "tool"),
    )
    return Fork(spec, entries, forked)


def forked_from(record: RunRecord) -> tuple[str, int] | None:
    """(the run forked, the step) of a run made by a fork; None for any other run."""
    found = record.options.get(FORKED_FROM)
    if isinstance(found, dict) and isinstance(found.get("run_id"), str):
        at = found.get("at")
        if isinstance(at, int) and not isinstance(at, bool):
            return found["run_id"], at
    return None
