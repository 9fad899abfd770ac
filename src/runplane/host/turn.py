"""`TurnResult`: what one turn of a host conversation produced, error or not."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents import RunResultStreaming, ToolApprovalItem

from ..bridge import HostEvent, ModelUsage, RunFinished, UsageTotals

__all__ = ["TurnResult", "output_text", "usage_of"]


@dataclass(frozen=True)
class TurnResult:
    """One turn: its final output, the host events it produced, its usage, and how it ended.

    A turn that failed has `error` set (its `RunFailed` event is the last of `events`) and the
    conversation goes on; one that paused for approval has `interruptions` (decide them with
    `ctx.approve` / `ctx.reject`, which continue the turn) and `final_output` None.
    """

    final_output: str | None
    events: Sequence[HostEvent]
    usage: UsageTotals
    error: BaseException | None = None
    interruptions: Sequence[ToolApprovalItem] = ()
    result: RunResultStreaming | None = field(default=None, repr=False)
    """The SDK's own result of the turn (None when it failed before starting)."""

    @property
    def ok(self) -> bool:
        """The turn ended with an answer (no error, nothing waiting for approval)."""
        return self.error is None and not self.interruptions

    @property
    def cancelled(self) -> bool:
        return bool(self.events) and self.events[-1].kind == "run_cancelled"


def output_text(output: Any) -> str | None:
    """A final output as text: a str as is, structured output as JSON, None as None."""
    if output is None or isinstance(output, str):
        return output
    dump = getattr(output, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    try:
        return json.dumps(output, default=str)
    except (TypeError, ValueError):
        return str(output)


def usage_of(events: Sequence[HostEvent]) -> UsageTotals:
    """The turn's totals: its `RunFinished`'s, else the sum of its per-call `ModelUsage`."""
    for event in reversed(events):
        if isinstance(event, RunFinished):
            return event.usage
    calls = [e for e in events if isinstance(e, ModelUsage)]
    return UsageTotals(
        requests=sum(e.requests for e in calls),
        input_tokens=sum(e.input_tokens for e in calls),
        output_tokens=sum(e.output_tokens for e in calls),
        total_tokens=sum(e.total_tokens for e in calls),
    )
