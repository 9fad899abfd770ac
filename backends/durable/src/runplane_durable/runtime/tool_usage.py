"""What a tool call adds to its run's usage, journaled with its output so a replay adds it too.

A run a tool starts (`Agent.as_tool`, or a function tool calling `Runner.run`) shares the parent's
`Usage` object: its model calls count in the parent's usage. A replay takes the tool's output from
the journal and starts no such run, so without this the replayed parent would report fewer
requests and tokens than the live one did. Each model response is counted for every tool call it
runs inside (context variables: a tool's runs, and their own tools' runs, at any depth), so tool
calls running side by side never count each other's.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.usage import Usage, deserialize_usage, serialize_usage

__all__ = ["add_recorded", "count", "counting", "recorded"]

_OPEN: contextvars.ContextVar[tuple[list[Usage], ...]] = contextvars.ContextVar(
    "runplane_tool_usage", default=()
)


@contextmanager
def counting() -> Iterator[list[Usage]]:
    """Collect the usage of every model response given while a tool call runs."""
    mine: list[Usage] = []
    token = _OPEN.set((*_OPEN.get(), mine))
    try:
        yield mine
    finally:
        _OPEN.reset(token)


def count(usage: Usage) -> None:
    """A model response's usage (live or replayed), which the SDK adds to the run's usage."""
    for collected in _OPEN.get():
        collected.append(usage)


def recorded(collected: list[Usage]) -> dict[str, Any] | None:
    """What a tool call's runs added, in the SDK's serialized form (None: nothing)."""
    if not collected:
        return None
    total = Usage()
    for usage in collected:
        total.add(usage)
    return serialize_usage(total)


def add_recorded(usage: Usage, recorded: dict[str, Any] | None) -> None:
    """Add to `usage` what a replayed tool call had added to it live."""
    if recorded:
        usage.add(deserialize_usage(recorded))
