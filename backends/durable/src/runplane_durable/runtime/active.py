"""The run a task is executing durably, visible to the interceptors through a context variable.

The interceptors are installed process-wide but act only while `ACTIVE` holds a run, so runs on
other backends (and the SDK's own) are untouched. Nested runs started by a tool get their own
scope: a tool invocation clears `ACTIVE` while it runs, and sets `TOOL_OF` to the run whose tool
it is, so a run the SDK starts there (`Agent.as_tool`) is routed to that run's backend.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from runplane import RunnerBackend

from .. import lazy_errors as errors
from ..engine import Engine, RunSession
from ..records import JournalEntry, RunStatus
from .cancel import Stopper

__all__ = [
    "ACTIVE",
    "NAMED_RUN_ID",
    "PARTS",
    "TOOL_CALL_KEY",
    "TOOL_OF",
    "ActiveRun",
    "ModelRequest",
]

# What a model call is asked, part by part, each named as a divergence error names it.
PARTS: dict[str, str] = {
    "agent": "the agent",
    "instructions": "the instructions",
    "input": "the input (the conversation so far: an earlier step's output changed)",
    "tools": "the tools",
    "output": "the output type",
    "handoffs": "the handoffs",
    "settings": "the model settings",
    "prompt": "the prompt",
    "conversation": "previous_response_id or conversation_id",
}


@dataclass(frozen=True)
class ModelRequest:
    """What a model call is asked, as digests: whole to compare, by part to say what changed."""

    fingerprint: str
    parts: dict[str, str]  # PARTS name -> digest
    tools: dict[str, str]  # tool name -> digest of what the model is told about it
    describe: str
    # The fingerprint the journals written before per-part digests hold; computed only for them.
    legacy: Callable[[], str]


@dataclass
class ActiveRun:
    """Replay cursor and writer for one run."""

    opening: Awaitable[RunSession]
    streamed: bool
    # The backend executing the run: where runs started by its tools go.
    backend: RunnerBackend | None = None
    # The engine keeping the run: where its remote tool calls are enqueued.
    engine: Engine | None = None
    _session: RunSession | None = None
    _models: list[JournalEntry] = field(default_factory=list)
    _tools: dict[str, JournalEntry] = field(default_factory=dict)
    model_ordinal: int = 0  # model calls completed so far, live or replayed
    # The run's `session=` reads and writes journaled, in order (session_steps.py), and how many
    # of them this execution has made so far, live or replayed.
    sessions: list[JournalEntry] = field(default_factory=list)
    session_ordinal: int = 0
    # Which stretch of the run they belong to: the model calls made before it. A run resumed
    # from an approval snapshot starts a new stretch past the snapshot's model calls, whose
    # session steps are its own (the SDK reads and writes its session anew from the state).
    session_segment: int | str = 0
    # A continuation of a stopped run whose last continuation ended (stopped again, or failed):
    # its session steps are a stretch of their own, not a replay of that one's (the state, which
    # the SDK updated as that one went, reads and writes the session otherwise).
    fresh_session_stretch: bool = False
    # How the run stops when another process cancels it (None: a replay, nothing to stop).
    stopper: Stopper | None = None
    _open_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def session(self) -> RunSession:
        if self._session is None:
            async with self._open_lock:
                if self._session is None:
                    session = await self.opening
                    self._models = [e for e in session.journal if e.kind == "model"]
                    self._tools = {e.key: e for e in session.journal if e.kind == "tool"}
                    self._session = session
                    self.begin_session_segment()
        return self._session

    def begin_session_segment(self) -> None:
        """Start the stretch of session steps past the model calls made so far (0 at a run's
        start; a snapshot's model calls when it resumes from one): its steps, in order. Of
        several stretches from one point (continuations of a stopped run, each after the last
        failed), the newest, or a new one for a fresh continuation ("2.1", "2.2", ...)."""
        assert self._session is not None
        base = self.model_ordinal
        steps = [e for e in self._session.journal if e.kind == "session"]
        variants = [
            _variant(seg)[1]
            for seg in {e.payload.get("segment", 0) for e in steps}
            if _variant(seg)[0] == base
        ]
        newest = max(variants, default=0)
        chosen = newest + 1 if self.fresh_session_stretch and variants else newest
        self.session_segment = base if chosen == 0 else f"{base}.{chosen}"
        self.session_ordinal = 0
        self.sessions = [e for e in steps if e.payload.get("segment", 0) == self.session_segment]

    def recorded_model(self, request: ModelRequest) -> JournalEntry | None:
        """The journaled response for the next model call, checked against what is asked now."""
        assert self._session is not None
        if self.model_ordinal >= len(self._models):
            if self._session.read_only:
                raise errors.ReplayDivergenceError(
                    run_id=self._session.record.id,
                    kind="model",
                    step=self.model_ordinal + 1,
                    requested=request.describe,
                )
            return None
        entry = self._models[self.model_ordinal]
        parts = entry.payload.get("parts")
        expected = request.fingerprint if parts is not None else request.legacy()
        if entry.fingerprint != expected:
            raise errors.ReplayDivergenceError(
                run_id=self._session.record.id,
                kind="model",
                step=self.model_ordinal + 1,
                requested=request.describe,
                recorded=str(entry.payload.get("describe", "?")),
                what_changed=_changes(entry.payload, request),
            )
        return entry

    def recorded_tool(self, key: str) -> JournalEntry | None:
        entry = self._tools.get(key)
        if entry is None and self._session is not None and self._session.read_only:
            raise errors.ReplayDivergenceError(
                run_id=self._session.record.id, kind="tool", step=key
            )
        return entry

    def remember_tool(self, entry: JournalEntry) -> None:
        self._tools[entry.key] = entry


def _changes(recorded: Any, request: ModelRequest) -> str:
    """What differs between a journaled request and the one made now, in words."""
    parts = recorded.get("parts")
    if not isinstance(parts, dict):  # journaled before requests were digested part by part
        return (
            "the instructions, input, tools, output type or handoffs (an older journal: not which)"
        )
    changed: list[str] = []
    for name, label in PARTS.items():
        if parts.get(name) == request.parts.get(name):
            continue
        if name != "tools":
            changed.append(label)
            continue
        before: dict[str, str] = recorded.get("tool_digests") or {}
        now = request.tools
        tools = [
            f"tool {n!r} (its description or parameter schema)"
            for n in now
            if n in before and before[n] != now[n]
        ]
        tools += [f"tool {n!r} (added)" for n in now if n not in before]
        tools += [f"tool {n!r} (removed)" for n in before if n not in now]
        changed.extend(tools or ["the tools (their order)"])
    return ", ".join(changed) if changed else "the request"


ACTIVE: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar(
    "runplane_durable_active_run", default=None
)
# The durable run whose tool is running in this context (ACTIVE is None meanwhile).
TOOL_OF: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar(
    "runplane_durable_tool_of", default=None
)
# The journal key of the tool call running in this context (set with TOOL_OF): a remote tool's
# task is keyed by it, so a resumed run finds the task its call enqueued before.
TOOL_CALL_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runplane_durable_tool_call_key", default=None
)
REQUESTED_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runplane_durable_requested_run_id", default=None
)
# The id the program itself chose with `run_id("...")` (not a generated or derived one).
NAMED_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runplane_durable_named_run_id", default=None
)
LAST_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runplane_durable_last_run_id", default=None
)
# A worker's claim (`identity.claiming`): the run it listed, and the status it was listed in.
CLAIMING: contextvars.ContextVar[tuple[str, RunStatus] | None] = contextvars.ContextVar(
    "runplane_durable_claiming", default=None
)


def _variant(segment: object) -> tuple[int, int]:
    """A session stretch's (model calls before it, which continuation from there): 2 is
    (2, 0), "2.1" (2, 1); anything else counts as no stretch of this run's."""
    if isinstance(segment, int) and not isinstance(segment, bool):
        return segment, 0
    if isinstance(segment, str):
        base, _, variant = segment.partition(".")
        if base.isdigit() and variant.isdigit():
            return int(base), int(variant)
    return -1, -1
