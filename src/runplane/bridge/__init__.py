"""The event bridge: one typed vocabulary of host events, derived from any backend's runs.

    async for event in runplane.bridge.bridge(Runner.run_streamed(agent, prompt)):
        show(event)                                  # TextDelta, ToolCalled, ..., RunFinished

`events` (the vocabulary) imports no SDK; `Bridge` and `bridge` (the translator) are imported
on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .events import (
    EVENT_TYPES,
    ApprovalDecided,
    ApprovalRequested,
    HandedOff,
    HostEvent,
    ModelUsage,
    ReasoningDelta,
    ReasoningDone,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    TerminalEvent,
    TextDelta,
    TextDone,
    ToolCalled,
    ToolOutput,
    UsageTotals,
    event_from_dict,
)

if TYPE_CHECKING:
    from .stream import bridge
    from .translate import Bridge

__all__ = [
    "EVENT_TYPES",
    "ApprovalDecided",
    "ApprovalRequested",
    "Bridge",
    "HandedOff",
    "HostEvent",
    "ModelUsage",
    "ReasoningDelta",
    "ReasoningDone",
    "RunCancelled",
    "RunFailed",
    "RunFinished",
    "RunStarted",
    "TerminalEvent",
    "TextDelta",
    "TextDone",
    "ToolCalled",
    "ToolOutput",
    "UsageTotals",
    "bridge",
    "event_from_dict",
]

_LAZY = {"Bridge": "translate", "bridge": "stream"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
