"""The event bridge: one typed vocabulary of host events, derived from any backend's runs.

    async for event in runplane.bridge.bridge(Runner.run_streamed(agent, prompt)):
        show(event)                                  # TextDelta, ToolCalled, ..., RunFinished

`events` (the vocabulary) imports no SDK.
"""

from __future__ import annotations

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

__all__ = [
    "EVENT_TYPES",
    "ApprovalDecided",
    "ApprovalRequested",
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
    "event_from_dict",
]
