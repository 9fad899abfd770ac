"""Plain records exchanged with an engine (in process or, later, over HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "TERMINAL",
    "EventRecord",
    "JournalRecord",
    "NewEvent",
    "RunRecord",
    "RunSpec",
    "RunStatus",
    "UsageDelta",
]

RunStatus = Literal["running", "awaiting_approval", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "cancelled"})


@dataclass(frozen=True)
class RunSpec:
    """What identifies a run's start: a reused id must come with the same agent and input."""

    run_id: str
    agent_name: str
    input: Any
    input_fingerprint: str
    options: dict[str, Any]
    # The program chose the id (`with run_id("order-42")`), so it may mean to resume a run.
    named: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class RunRecord:
    id: str
    agent_name: str
    status: RunStatus
    input: Any
    options: dict[str, Any]
    created_at: float
    updated_at: float
    finished_at: float | None
    owner: str | None
    lease_expires_at: float | None
    model_calls: int
    tool_calls: int
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    final_output: Any | None
    error_type: str | None
    error: str | None
    input_fingerprint: str = ""


@dataclass(frozen=True)
class JournalRecord:
    seq: int
    kind: Literal["model", "tool"]
    key: str
    fingerprint: str | None
    payload: Any


@dataclass(frozen=True)
class NewEvent:
    type: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventRecord:
    run_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class UsageDelta:
    model_calls: int = 0
    tool_calls: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
