"""The host event vocabulary: what a host application is told about a run, as plain data.

These classes import nothing from the SDK, so a host (or an observer plugin) can take, store and
send them without paying for the SDK. Every event carries the run's id and the name of the agent
that was current when it happened; `to_dict()` gives a JSON-safe dict with the event's `kind`, and
`event_from_dict` reads one back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Union

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


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageTotals:
    """Token use summed over a run's model calls (`requests` is how many calls there were)."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class _Event:
    """Fields every host event has."""

    kind: ClassVar[str]
    run_id: str
    agent_name: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, UsageTotals) else value
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStarted(_Event):
    """The run began (always the first event of a run)."""

    kind: ClassVar[str] = "run_started"


@dataclass(frozen=True, kw_only=True, slots=True)
class TextDelta(_Event):
    """A piece of an output message's text; `message_id` is the same for all of one message."""

    kind: ClassVar[str] = "text_delta"
    message_id: str
    delta: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TextDone(_Event):
    """An output message is complete: `text` is its whole text (the concatenated deltas)."""

    kind: ClassVar[str] = "text_done"
    message_id: str
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ReasoningDelta(_Event):
    """A piece of a reasoning item's summary text."""

    kind: ClassVar[str] = "reasoning_delta"
    item_id: str
    delta: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ReasoningDone(_Event):
    """A reasoning item is complete: `text` is its summary text (summary parts joined)."""

    kind: ClassVar[str] = "reasoning_done"
    item_id: str
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCalled(_Event):
    """The model called a tool; `arguments` is the arguments as the model sent them (JSON text)."""

    kind: ClassVar[str] = "tool_called"
    call_id: str
    tool_name: str
    arguments: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolOutput(_Event):
    """A tool call's output, as text (what the model is given back)."""

    kind: ClassVar[str] = "tool_output"
    call_id: str
    tool_name: str
    output: str


@dataclass(frozen=True, kw_only=True, slots=True)
class HandedOff(_Event):
    """Control passed from agent `source` to agent `target` (`agent_name` is `source`)."""

    kind: ClassVar[str] = "handed_off"
    source: str
    target: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalRequested(_Event):
    """A tool call waits for a human decision; the run pauses with it in `interruptions`."""

    kind: ClassVar[str] = "approval_requested"
    call_id: str
    tool_name: str
    arguments: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalDecided(_Event):
    """A decision on a tool call that asked for approval (`message`: the rejection text, if any)."""

    kind: ClassVar[str] = "approval_decided"
    call_id: str
    tool_name: str
    approved: bool
    message: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelUsage(_Event):
    """Token use of one model call."""

    kind: ClassVar[str] = "model_usage"
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFinished(_Event):
    """The run ended without error.

    `final_output` is the run's final output as text (structured outputs as JSON), or None when
    the run paused for approvals (its `ApprovalRequested` events came just before this one).
    """

    kind: ClassVar[str] = "run_finished"
    final_output: str | None
    usage: UsageTotals


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFailed(_Event):
    """The run ended with an error: the exception's class name and its message."""

    kind: ClassVar[str] = "run_failed"
    error_type: str
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunCancelled(_Event):
    """The run was cancelled before it ended (the task was cancelled, or the run was)."""

    kind: ClassVar[str] = "run_cancelled"


HostEvent = Union[  # noqa: UP007 - a runtime alias must also work on Python 3.10's typing
    RunStarted,
    TextDelta,
    TextDone,
    ReasoningDelta,
    ReasoningDone,
    ToolCalled,
    ToolOutput,
    HandedOff,
    ApprovalRequested,
    ApprovalDecided,
    ModelUsage,
    RunFinished,
    RunFailed,
    RunCancelled,
]
"""Any host event."""

TerminalEvent = Union[RunFinished, RunFailed, RunCancelled]  # noqa: UP007
"""The event that ends a run's events: exactly one per run."""

EVENT_TYPES: dict[str, type[HostEvent]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        TextDelta,
        TextDone,
        ReasoningDelta,
        ReasoningDone,
        ToolCalled,
        ToolOutput,
        HandedOff,
        ApprovalRequested,
        ApprovalDecided,
        ModelUsage,
        RunFinished,
        RunFailed,
        RunCancelled,
    )
}
"""Each event class by its `kind`."""


def event_from_dict(data: dict[str, Any]) -> HostEvent:
    """The event whose `to_dict()` gave `data`; ValueError saying what is wrong otherwise."""
    kind = data.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(
            f"not a host event: kind {kind!r} is none of {', '.join(sorted(EVENT_TYPES))}"
        )
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    given = set(data) - {"kind"}
    if not required <= given <= names:
        raise ValueError(
            f"{kind} event: missing fields {sorted(required - given)}, unknown fields "
            f"{sorted(given - names)}; pass a dict as the event's to_dict() gives it"
        )
    values = {name: data[name] for name in given}
    if cls is RunFinished:
        usage = values["usage"]
        if not isinstance(usage, dict) or set(usage) != set(UsageTotals().to_dict()):
            raise ValueError(
                f"run_finished event: usage must be a dict of {sorted(UsageTotals().to_dict())}, "
                f"not {usage!r}"
            )
        values["usage"] = UsageTotals(**usage)
    return cls(**values)
