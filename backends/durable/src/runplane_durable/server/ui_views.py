"""What the web UI shows, as plain data: the rows of the runs list and a run's page (its facts
and its timeline), built from the engine's records with the data layer's own readers.

A run's state (orphaned, stopped, ...) is `states.run_state`, as `runplane runs list` shows it;
events are read with `events.parse`, large values back from the journal with `events.in_full`,
which attempt did a step with `attempts.by_step`. Each timeline item is one event as a title,
chips and labelled text blocks: the page's template and its script render the same shape, and
neither interprets a payload itself. Everything here is text; escaping is the renderers' job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from ..attempts import by_step
from ..codec import plain_value
from ..engine import Engine
from ..events import (
    ApprovalDecided,
    ApprovalRequested,
    AttemptEnded,
    AttemptStarted,
    CancelRequested,
    Event,
    HandoffRequested,
    ModelCalled,
    RunAwaitingApproval,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunForked,
    RunQueued,
    ToolCalled,
    UnknownEvent,
    in_full,
    parse,
)
from ..records import EventRecord, RunRecord
from ..states import FINISHED, Holder, State, run_state, status_of, tools_in_flight

__all__ = [
    "LIST_LIMIT",
    "Block",
    "Item",
    "Row",
    "RunView",
    "age",
    "item_of",
    "list_rows",
    "run_page",
    "run_path",
]

LIST_LIMIT = 100  # runs the list shows, newest first
# Runs stored `running` read to find those in one derived state (orphaned, stopped, running).
_SCAN_LIMIT = 5000


def run_path(run_id: str) -> str:
    """A run id as one path segment, dots too (clients drop `.` and `..` segments)."""
    return quote(run_id, safe="").replace(".", "%2E")


def age(seconds: float) -> str:
    """How long ago, for people: 12 s, 5 min, 3 h, 2 d."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _utc(ts: float | None) -> str:
    return "-" if ts is None else f"{_clock(ts)} UTC"


def _text(value: Any) -> str:
    """A value as readable text: strings as they are (JSON text pretty-printed), the rest as
    indented JSON."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if not isinstance(parsed, (dict, list)):
            return value
        value = parsed
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Row:
    """One run in the list."""

    id: str
    path: str  # the run id as a path segment
    state: str
    label: str  # the state as people read it ("running, cancel requested")
    why: str
    agent: str
    created_at: float
    age: str
    turns: int
    tokens: int

    @classmethod
    def of(cls, run: RunRecord, state: State, now: float) -> Row:
        return cls(
            id=run.id,
            path=run_path(run.id),
            state=state.state,
            label=state.label,
            why=state.why,
            agent=run.agent_name,
            created_at=run.created_at,
            age=age(now - run.created_at),
            turns=run.model_calls,
            tokens=run.total_tokens,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def list_rows(
    engine: Engine,
    *,
    state: str | None = None,
    agent: str | None = None,
    limit: int = LIST_LIMIT,
    now: float | None = None,
) -> list[Row]:
    """The newest runs in `state` (a `states.STATES` value: orphaned and stopped too) of
    `agent`, as `runplane runs list --state` finds them: by their stored status, then by their
    state."""
    now = time.time() if now is None else now
    if state is None or status_of(state) != "running":  # a state that is its stored status
        status = None if state is None else status_of(state)
        runs = await engine.list_runs(limit=limit, status=status, agent=agent)
        return [Row.of(r, run_state(r, now=now), now) for r in runs]
    rows: list[Row] = []
    for run in await engine.list_runs(limit=_SCAN_LIMIT, status="running", agent=agent):
        found = run_state(run, now=now)
        if found.state == state:
            rows.append(Row.of(run, found, now))
            if len(rows) == limit:
                break
    return rows


@dataclass(frozen=True)
class Block:
    """A labelled piece of text of a timeline item (arguments, an output, a message)."""

    label: str
    text: str
    tone: str = ""  # "error" for what failed


@dataclass(frozen=True)
class Item:
    """One event of a run's timeline: `kind` sets its colour; `by` is the attempt and process
    that wrote it."""

    seq: int
    time: str
    kind: str
    title: str
    by: str = ""
    chips: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _process(host: str | None, pid: int | None, owner: str | None) -> str:
    holder = Holder.of(owner) if owner else None
    host = host or (holder.host if holder else None)
    pid = pid or (holder.pid if holder else None)
    return " ".join(str(x) for x in (host, None if pid is None else f"pid {pid}") if x)


def _by(attempt: AttemptStarted | None) -> str:
    if attempt is None:
        return ""
    where = _process(attempt.host, attempt.pid, attempt.owner)
    number = f"attempt {attempt.attempt}" if attempt.attempt else "an attempt"
    return f"{number} · {where}" if where else number


_ENDED = {
    "finished": "finished",
    "failed": "failed",
    "cancelled": "cancelled",
    "awaiting_approval": "awaiting approval",
    "interrupted": "interrupted (stopped; resumable)",
    "lease_lost": "lease lost (another process took the run over)",
    "killed": "killed",
}


def _seconds(value: float | None) -> list[str]:
    return [] if value is None else [f"{value:.3f} s"]


def _model(e: ModelCalled) -> tuple[str, str, list[str], list[Block]]:
    usage = e.usage
    chips = [*_seconds(e.seconds), f"{usage.input_tokens} in · {usage.output_tokens} out tokens"]
    if usage.requests != 1:
        chips.append(f"{usage.requests} requests")
    if e.streamed:
        chips.append("streamed")
    blocks: list[Block] = []
    text = e.text()
    if text:
        blocks.append(Block("says", text))
    elif e.output_preview is not None:
        blocks.append(Block("output (first 500 characters)", e.output_preview))
    for call in e.calls:
        if isinstance(call, HandoffRequested):
            blocks.append(Block("handoff", f"→ {call.to}"))
        else:
            arguments = call.arguments if call.arguments is not None else call.arguments_preview
            blocks.append(Block(f"asks tool {call.name} ({call.call_id})", _text(arguments or "")))
    return "model", f"model call #{e.ordinal + 1} · agent {e.agent}", chips, blocks


def _tool(e: ToolCalled) -> tuple[str, str, list[str], list[Block]]:
    arguments = e.arguments if e.arguments is not None else e.arguments_preview
    output = plain_value(e.output) if e.output_preview is None else e.output_preview
    blocks = [Block("arguments", _text(arguments or ""))]
    failed = e.error is not None or e.sdk_error
    if e.error is not None:
        blocks.append(Block("raised", f"{e.error.type}: {e.error.message}", "error"))
        blocks.append(Block("the model was shown", _text(output)))
    else:
        blocks.append(Block("output", _text(output), "error" if e.sdk_error else ""))
    if e.stringified is not None:
        blocks.append(Block("stored as text", f"a {e.stringified.type}: {e.stringified.because}"))
    title = f"tool {e.name}" + (" failed" if failed else "")
    return "tool-error" if failed else "tool", title, [*_seconds(e.seconds), e.call_id], blocks


def _attempt(e: AttemptStarted | AttemptEnded) -> tuple[str, list[str]]:
    where = _process(e.host, e.pid, e.owner)
    number = f"attempt {e.attempt}" if e.attempt else "an attempt"
    at = f" on {where}" if where else ""
    if isinstance(e, AttemptStarted):
        if e.resumed:
            replayed = f"{e.model_calls} model calls, {e.tool_outputs} tool outputs"
            chips = [f"resumed: {replayed} replayed"]
        else:
            chips = [] if e.resumed is None else ["new run"]
        return f"{number} started{at}", chips
    chips = [] if e.detected_at is None else [f"detected {_clock(e.detected_at)[11:]}"]
    return f"{number}{at} ended: {_ENDED.get(e.reason, e.reason)}", chips


def item_of(
    record: EventRecord, event: Event | UnknownEvent, attempt: AttemptStarted | None
) -> Item:
    """The timeline item of one event."""
    by = ""
    chips: list[str] = []
    blocks: list[Block] = []
    if isinstance(event, ModelCalled):
        kind, title, chips, blocks = _model(event)
        by = _by(attempt)
    elif isinstance(event, ToolCalled):
        kind, title, chips, blocks = _tool(event)
        by = _by(attempt)
    elif isinstance(event, (AttemptStarted, AttemptEnded)):
        kind = "attempt"
        title, chips = _attempt(event)
    elif isinstance(event, ApprovalRequested):
        kind, title, chips = "approval", f"approval requested: {event.name}", [event.call_id]
        if event.arguments is not None:
            blocks = [Block("arguments", _text(event.arguments))]
    elif isinstance(event, ApprovalDecided):
        verb = "approved" if event.approved else "rejected"
        kind = "approval" if event.approved else "approval-rejected"
        title = f"{verb} {event.call_id}" + (f" by {event.by}" if event.by else "")
        chips = ["always"] if event.always else []
        blocks = [] if event.message is None else [Block("message", event.message)]
    elif isinstance(event, RunAwaitingApproval):
        kind, title = "approval", "awaiting approval"
        calls = "\n".join(f"{c.name} ({c.call_id})" for c in event.calls or ())
        blocks = [Block("waiting calls", calls)] if calls else []
    elif isinstance(event, CancelRequested):
        kind, title = "cancel", f"cancel requested ({event.mode}) by {event.by()}"
        if event.holder is None:
            chips = ["no process was executing it: cancelled at once"]
        else:
            chips = [f"asked {Holder.of(event.holder)} to stop it"]
    elif isinstance(event, RunCompleted):
        kind, title = "outcome", "completed"
        blocks = [Block("final output", _text(plain_value(event.final_output)))]
    elif isinstance(event, RunFailed):
        kind, title = "failed", "failed"
        error_type = (event.error_type or "error").removeprefix("builtins.")
        blocks = [Block(error_type, event.error or "", "error")]
    elif isinstance(event, RunCancelled):
        kind, title = "cancel", "cancelled"
    elif isinstance(event, RunQueued):
        kind, title = "attempt", f"queued on {event.queue}, for a worker"
        chips = [] if event.agent_ref is None else [f"agent {event.agent_ref}"]
    elif isinstance(event, RunForked):
        kind, title = "attempt", f"forked from {event.from_run} at step {event.at}"
        chips = [f"{event.model_calls} model calls, {event.tool_outputs} tool outputs shared"]
    else:  # a newer version's event, or one whose payload does not fit its type
        kind, title = "other", event.type
        blocks = [Block("payload", _text(event.to_payload()))]
        if isinstance(event, UnknownEvent) and event.problem:
            chips = [event.problem]
    return Item(record.seq, _clock(record.created_at)[11:], kind, title, by, chips, blocks)


@dataclass(frozen=True)
class RunView:
    """A run's facts, as its page's header shows them."""

    id: str
    path: str
    agent: str
    agent_ref: str | None
    queue: str | None
    status: str
    state: str
    label: str
    why: str
    finished: bool
    created: str
    finished_at: str
    model_calls: int
    tool_calls: int
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input: str
    final_output: str | None
    error: str | None
    in_flight: list[str]
    last_seq: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def run_page(engine: Engine, run_id: str, *, after: int = 0) -> tuple[RunView, list[Item]]:
    """The run's facts and the timeline items of its events after seq `after`.

    The run is read first, then every event (which attempt did a step depends on those before
    it): its outcome commits with its last events, so a run read finished here has all of them
    in the list (read the other way round, a run finishing in between read finished without
    its last events, and a page that then stopped listening never showed them), and a page
    refreshed after each event it is told of ends up showing the outcome.
    """
    run = await engine.get_run(run_id)  # RunNotFoundError: a 404
    records = await engine.list_events(run_id)
    parsed = [parse(r) for r in records]
    if any(getattr(p, "in_journal", False) for p in parsed):
        parsed = in_full(parsed, await engine.read_journal(run.id))
    items = [
        item_of(r, p, a)
        for r, p, a in zip(records, parsed, by_step(parsed), strict=True)
        if r.seq > after
    ]
    return _run_view(run, parsed, records[-1].seq if records else after), items


def _run_view(run: RunRecord, parsed: Sequence[Event | UnknownEvent], last_seq: int) -> RunView:
    state = run_state(run)
    flying = tools_in_flight(run.status, parsed)
    error = None
    if run.status == "failed":
        error = f"{(run.error_type or 'error').removeprefix('builtins.')}: {run.error or ''}"
    final_output = None
    if run.status == "completed":
        final_output = _text(plain_value(run.final_output))
    return RunView(
        id=run.id,
        path=run_path(run.id),
        agent=run.agent_name,
        agent_ref=run.agent_ref,
        queue=run.queue,
        status=run.status,
        state=state.state,
        label=state.label,
        why=state.why,
        finished=run.status in FINISHED,
        created=_utc(run.created_at),
        finished_at=_utc(run.finished_at),
        model_calls=run.model_calls,
        tool_calls=run.tool_calls,
        requests=run.requests,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        total_tokens=run.total_tokens,
        input=_text(run.input),
        final_output=final_output,
        error=error,
        in_flight=[f"{f.name} ({f.call_id})" for f in flying],
        last_seq=last_seq,
    )
