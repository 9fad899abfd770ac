"""The run's event vocabulary: one typed record per event type, and its stored payload.

The runtime writes these (`NewEvent(e.TYPE, e.to_payload())`), and everything that reads a run's
history (the CLI now; the API, SSE, the UI and the host bridge next) reads them back with
`parse(record)` instead of picking at payload keys. A payload is stored as it was written, so
`from_payload` reads every shape an earlier version wrote (a key added since is optional, and
keys it does not know are ignored), and `to_payload` writes exactly the keys, in the order,
earlier versions wrote: a change here is additive. A payload that does not fit its type (a
required key missing or of the wrong type) parses as an `UnknownEvent` that says why, so no
reader fails on one odd row. The JSON forms are documented in docs/architecture.md, "Events".
No SDK import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, get_args

from .names import tool_key
from .records import EventRecord, JournalRecord, NewEvent, RunStatus

__all__ = [
    "END_REASONS",
    "EVENT_TYPES",
    "ApprovalDecided",
    "ApprovalRequested",
    "AttemptEnded",
    "AttemptStarted",
    "CancelRequested",
    "EndReason",
    "Event",
    "HandoffRequested",
    "ModelCalled",
    "PendingCall",
    "RunAwaitingApproval",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunForked",
    "RunOutcome",
    "RunQueued",
    "Stringified",
    "TokenUsage",
    "ToolCalled",
    "ToolError",
    "ToolRequest",
    "UnknownEvent",
    "in_full",
    "outcome",
    "parse",
]

# Why an attempt ended: the run's outcome, or what stopped it (docs/durable.md, "Attempts").
EndReason = Literal[
    "finished", "failed", "cancelled", "awaiting_approval", "interrupted", "lease_lost", "killed"
]
END_REASONS: tuple[str, ...] = get_args(EndReason)

_IN_JOURNAL = "_in_journal"
_PREVIEW = "_preview"


# -- reading a payload ----------------------------------------------------------------------------


def _get(p: Mapping[str, Any], key: str, types: type | tuple[type, ...], default: Any) -> Any:
    """`p[key]` if it is one of `types`; `default` when it is missing or null; else ValueError."""
    value = p.get(key)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ValueError(f"{key!r} is {value!r}, not a number")
    if not isinstance(value, types):
        raise ValueError(f"{key!r} is a {type(value).__name__}: {value!r}")
    return value


def _need(p: Mapping[str, Any], key: str, types: type | tuple[type, ...]) -> Any:
    if p.get(key) is None:
        raise ValueError(f"it has no {key!r}")
    return _get(p, key, types, None)


def _number(p: Mapping[str, Any], key: str) -> float | None:
    value = _get(p, key, (int, float), None)
    return None if value is None else value


def _objects(p: Mapping[str, Any], key: str) -> list[Mapping[str, Any]] | None:
    value = _get(p, key, list, None)
    if value is None:
        return None
    items: list[Mapping[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise ValueError(f"{key!r} holds {item!r}, not an object")
        items.append(item)
    return items


def _bounded(payload: dict[str, Any], name: str, value: Any, preview: str | None) -> None:
    """`value` under `name`, or, for a value kept in the journal only, its preview and a flag."""
    if preview is None:
        payload[name] = value
    else:
        payload[f"{name}{_IN_JOURNAL}"] = True
        payload[f"{name}{_PREVIEW}"] = preview


def _preview(p: Mapping[str, Any], name: str) -> str | None:
    """The preview of `name` when the value is in the journal only, else None."""
    if not p.get(f"{name}{_IN_JOURNAL}"):
        return None
    return str(_get(p, f"{name}{_PREVIEW}", str, ""))


# -- parts of events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenUsage:
    """A model call's usage. JSON: {"requests", "input_tokens", "output_tokens",
    "total_tokens"}, each optional (default 0)."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> TokenUsage:
        return cls(*(_get(p, k, int, 0) for k in cls().to_payload()))


@dataclass(frozen=True)
class ToolRequest:
    """A function tool call a model response asks for.

    JSON: {"type": "tool", "name", "call_id", "arguments"}; arguments over 4,096 characters are
    in the journal only: {"arguments_in_journal": true, "arguments_preview"} instead (then
    `arguments` is None and `arguments_preview` is set).
    """

    KIND: ClassVar[str] = "tool"
    name: str
    call_id: str
    arguments: str | None = None
    arguments_preview: str | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": self.KIND, "name": self.name, "call_id": self.call_id}
        _bounded(payload, "arguments", self.arguments, self.arguments_preview)
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> ToolRequest:
        preview = _preview(p, "arguments")
        return cls(
            _need(p, "name", str),
            _need(p, "call_id", str),
            None if preview is not None else _get(p, "arguments", str, None),
            preview,
        )


@dataclass(frozen=True)
class HandoffRequested:
    """A handoff a model response asks for. JSON: {"type": "handoff", "to", "call_id"} (`to`:
    the agent handed off to)."""

    KIND: ClassVar[str] = "handoff"
    to: str
    call_id: str

    def to_payload(self) -> dict[str, Any]:
        return {"type": self.KIND, "to": self.to, "call_id": self.call_id}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> HandoffRequested:
        return cls(str(_need(p, "to", (str, int, float))), _need(p, "call_id", str))


@dataclass(frozen=True)
class ToolError:
    """What a tool raised (the model was shown the SDK's failure text instead).
    JSON: {"type": "ConnectionError", "message": "upstream 503"}."""

    type: str
    message: str

    def to_payload(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> ToolError:
        return cls(_get(p, "type", str, "error"), _get(p, "message", str, ""))


@dataclass(frozen=True)
class Stringified:
    """A tool output stored as the text the model was shown, because the object could not be:
    JSON {"type": its type's name, "because": where in it the unstorable part is}."""

    type: str
    because: str

    def to_payload(self) -> dict[str, Any]:
        return {"type": self.type, "because": self.because}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> Stringified:
        return cls(_get(p, "type", str, ""), _get(p, "because", str, ""))


@dataclass(frozen=True)
class PendingCall:
    """A tool call a run stopped for, waiting for a decision: JSON {"call_id", "name", "key"}
    (`key`: its journal key, `names.tool_key`)."""

    call_id: str
    name: str
    key: str

    def to_payload(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "name": self.name, "key": self.key}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> PendingCall:
        return cls(_need(p, "call_id", str), _get(p, "name", str, ""), _need(p, "key", str))


# -- the events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCalled:
    """One live model call, written with its journal entry.

    JSON {"ordinal", "agent", "usage", "seconds", "output", "calls", "streamed"}: `ordinal`
    counts the run's model calls from 0; `seconds` is the call's latency (a streamed one: until
    its last event; missing before runplane-durable recorded it); `output` the response's output
    items, or {"output_in_journal": true, "output_preview"} when they are over 4,096 characters;
    `calls` the tool calls and handoffs it asks for.
    """

    TYPE: ClassVar[str] = "model_call"
    ordinal: int
    agent: str
    usage: TokenUsage = TokenUsage()
    seconds: float | None = None
    output: list[Any] | None = None
    output_preview: str | None = None
    calls: tuple[ToolRequest | HandoffRequested, ...] = ()
    streamed: bool = False

    @property
    def tools(self) -> list[ToolRequest]:
        return [c for c in self.calls if isinstance(c, ToolRequest)]

    def key_of(self, call: ToolRequest) -> str:
        """The journal key of a tool call this model call asked for (`names.tool_key`)."""
        return tool_key(self.ordinal + 1, call.call_id)

    def text(self) -> str:
        """The text of the response's messages, joined."""
        return " ".join(
            str(c.get("text", ""))
            for item in self.output or []
            if isinstance(item, dict) and item.get("type") == "message"
            for c in item.get("content") or []
            if isinstance(c, dict) and c.get("type") == "output_text"
        )

    @property
    def in_journal(self) -> bool:
        return self.output_preview is not None or any(
            c.arguments_preview is not None for c in self.tools
        )

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "ordinal": self.ordinal,
            "agent": self.agent,
            "usage": self.usage.to_payload(),
        }
        if self.seconds is not None:
            payload["seconds"] = self.seconds
        _bounded(payload, "output", self.output, self.output_preview)
        payload["calls"] = [c.to_payload() for c in self.calls]
        payload["streamed"] = self.streamed
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> ModelCalled:
        preview = _preview(p, "output")
        calls: list[ToolRequest | HandoffRequested] = []
        for call in _objects(p, "calls") or []:
            if call.get("type") == HandoffRequested.KIND:
                calls.append(HandoffRequested.from_payload(call))
            else:
                calls.append(ToolRequest.from_payload(call))
        return cls(
            ordinal=_need(p, "ordinal", int),
            agent=str(_need(p, "agent", (str, int, float))),
            usage=TokenUsage.from_payload(_get(p, "usage", dict, {})),
            seconds=_number(p, "seconds"),
            output=None if preview is not None else _get(p, "output", list, None),
            output_preview=preview,
            calls=tuple(calls),
            streamed=_get(p, "streamed", bool, False),
        )


@dataclass(frozen=True)
class ToolCalled:
    """A function tool's outcome, written with its journal entry (a tool that raised has one
    too, with its `error`).

    JSON {"name", "call_id", "sdk_error", "key", "seconds", "stringified", "error", "arguments",
    "output"}: `key` is its journal key; `sdk_error` says `output` is the SDK's failure text;
    `stringified` and `error` only when set; `output` is the encoded value (`codec`) the model
    was shown. Arguments or an output over 4,096 characters are in the journal only, as
    {"NAME_in_journal": true, "NAME_preview"}.
    """

    TYPE: ClassVar[str] = "tool_call"
    name: str
    call_id: str
    key: str
    sdk_error: bool = False
    seconds: float | None = None
    stringified: Stringified | None = None
    error: ToolError | None = None
    arguments: str | None = None
    arguments_preview: str | None = None
    output: Any = None
    output_preview: str | None = None

    @property
    def in_journal(self) -> bool:
        return self.arguments_preview is not None or self.output_preview is not None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "name": self.name,
            "call_id": self.call_id,
            "sdk_error": self.sdk_error,
            "key": self.key,
        }
        if self.seconds is not None:
            payload["seconds"] = self.seconds
        if self.stringified is not None:
            payload["stringified"] = self.stringified.to_payload()
        if self.error is not None:
            payload["error"] = self.error.to_payload()
        _bounded(payload, "arguments", self.arguments, self.arguments_preview)
        _bounded(payload, "output", self.output, self.output_preview)
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> ToolCalled:
        stringified = _get(p, "stringified", dict, None)
        error = _get(p, "error", dict, None)
        arguments = _preview(p, "arguments")
        output = _preview(p, "output")
        return cls(
            name=str(_need(p, "name", (str, int, float))),
            call_id=_need(p, "call_id", str),
            key=_need(p, "key", str),
            sdk_error=_get(p, "sdk_error", bool, False),
            seconds=_number(p, "seconds"),
            stringified=None if stringified is None else Stringified.from_payload(stringified),
            error=None if error is None else ToolError.from_payload(error),
            arguments=None if arguments is not None else _get(p, "arguments", str, None),
            arguments_preview=arguments,
            output=None if output is not None else p.get("output"),
            output_preview=output,
        )


@dataclass(frozen=True)
class ApprovalRequested:
    """A tool call waiting for a decision (issue #12 writes it; today `RunAwaitingApproval`
    names the waiting calls). JSON {"call_id", "name", "key", "arguments"}."""

    TYPE: ClassVar[str] = "approval_requested"
    call_id: str
    name: str
    key: str
    arguments: str | None = None

    def to_payload(self) -> dict[str, Any]:
        payload = {"call_id": self.call_id, "name": self.name, "key": self.key}
        if self.arguments is not None:
            payload["arguments"] = self.arguments
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> ApprovalRequested:
        return cls(
            _need(p, "call_id", str),
            _get(p, "name", str, ""),
            _need(p, "key", str),
            _get(p, "arguments", str, None),
        )


@dataclass(frozen=True)
class ApprovalDecided:
    """A decision on a waiting tool call (issue #12 writes it). JSON {"call_id", "key",
    "approved", "always", "message", "by"}: `always` approves or rejects the tool's later calls
    too; `message` (a rejection's, shown to the model) and `by` (who decided) only when set."""

    TYPE: ClassVar[str] = "approval_decided"
    call_id: str
    key: str
    approved: bool
    always: bool = False
    message: str | None = None
    by: str | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "call_id": self.call_id,
            "key": self.key,
            "approved": self.approved,
            "always": self.always,
        }
        if self.message is not None:
            payload["message"] = self.message
        if self.by is not None:
            payload["by"] = self.by
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> ApprovalDecided:
        if not isinstance(p.get("approved"), bool):
            raise ValueError("it has no 'approved' (true or false)")
        return cls(
            _need(p, "call_id", str),
            _need(p, "key", str),
            p["approved"],
            _get(p, "always", bool, False),
            _get(p, "message", str, None),
            _get(p, "by", str, None),
        )


def _where(p: Mapping[str, Any]) -> tuple[str | None, str | None, int | None]:
    return _get(p, "owner", str, None), _get(p, "host", str, None), _get(p, "pid", int, None)


@dataclass(frozen=True)
class AttemptStarted:
    """An execution of the run began (written by the claim, in its transaction).

    JSON {"attempt", "owner", "host", "pid", "resumed", "model_calls", "tool_outputs",
    "started_at", "lease_seconds"}: `attempt` counts from 1; `owner` is the lease holder;
    `resumed` says the journal already held steps, `model_calls` and `tool_outputs` how many;
    with the lease's expiry, `lease_seconds` tells when the holder last renewed it.
    """

    TYPE: ClassVar[str] = "attempt_started"
    attempt: int | None
    owner: str | None
    host: str | None = None
    pid: int | None = None
    resumed: bool | None = None
    model_calls: int = 0
    tool_outputs: int = 0
    started_at: float | None = None
    lease_seconds: float | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "resumed": self.resumed,
            "model_calls": self.model_calls,
            "tool_outputs": self.tool_outputs,
            "started_at": self.started_at,
            "lease_seconds": self.lease_seconds,
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> AttemptStarted:
        owner, host, pid = _where(p)
        return cls(
            _get(p, "attempt", int, None),
            owner,
            host,
            pid,
            _get(p, "resumed", bool, None),
            _get(p, "model_calls", int, 0),
            _get(p, "tool_outputs", int, 0),
            _number(p, "started_at"),
            _number(p, "lease_seconds"),
        )


@dataclass(frozen=True)
class AttemptEnded:
    """An execution of the run ended, and why (`END_REASONS`); written by the attempt itself,
    or, for `killed` and `lease_lost`, by the next attempt as it claims the run.

    JSON {"attempt", "owner", "host", "pid", "reason", "ended_at", "detected_at"}: `ended_at`
    is when it ended (for a dead holder: its last sign of life; may be null); `detected_at`,
    only for an end written by the next attempt, when it was found.
    """

    TYPE: ClassVar[str] = "attempt_ended"
    attempt: int | None
    owner: str | None
    host: str | None = None
    pid: int | None = None
    reason: str = "unknown"
    ended_at: float | None = None
    detected_at: float | None = None

    def to_payload(self) -> dict[str, Any]:
        payload = {
            "attempt": self.attempt,
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "reason": self.reason,
            "ended_at": self.ended_at,
        }
        if self.detected_at is not None:
            payload["detected_at"] = self.detected_at
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> AttemptEnded:
        owner, host, pid = _where(p)
        return cls(
            _get(p, "attempt", int, None),
            owner,
            host,
            pid,
            _get(p, "reason", str, "unknown"),
            _number(p, "ended_at"),
            _number(p, "detected_at"),
        )


@dataclass(frozen=True)
class CancelRequested:
    """A stop asked for from some process (`runplane runs cancel`, `Runner.cancel`, the API),
    written by the process that asked, as it asked.

    JSON {"mode", "host", "pid", "user", "requested_at", "holder", "via"}: `mode` is "immediate"
    or "after_turn"; `host`, `pid` and `user` say who asked (the process, as it says itself);
    `holder` is the lease holder asked to stop (the run was executing), or null when no process
    executed the run and it was recorded cancelled at once; `via` (optional) the server that
    wrote the request for a client over HTTP, and that client's address.
    """

    TYPE: ClassVar[str] = "cancel_requested"
    mode: str
    host: str | None = None
    pid: int | None = None
    user: str | None = None
    requested_at: float | None = None
    holder: str | None = None
    via: str | None = None

    def to_payload(self) -> dict[str, Any]:
        payload = {
            "mode": self.mode,
            "host": self.host,
            "pid": self.pid,
            "user": self.user,
            "requested_at": self.requested_at,
            "holder": self.holder,
        }
        if self.via is not None:  # absent, as in events written before it existed
            payload["via"] = self.via
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> CancelRequested:
        return cls(
            _need(p, "mode", str),
            _get(p, "host", str, None),
            _get(p, "pid", int, None),
            _get(p, "user", str, None),
            _number(p, "requested_at"),
            _get(p, "holder", str, None),
            _get(p, "via", str, None),
        )

    def by(self) -> str:
        """Who asked, for people: "host pid 12 user ann (via runplane server on s1, client
        10.0.0.7)"."""
        parts = [self.host or ("an API client" if self.via else "unknown host")]
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.user:
            parts.append(f"user {self.user}")
        if self.via:
            parts.append(f"(via {self.via})")
        return " ".join(parts)


@dataclass(frozen=True)
class RunCompleted:
    """The run finished: JSON {"final_output"}, the encoded final output (`codec`)."""

    TYPE: ClassVar[str] = "run_completed"
    STATUS: ClassVar[RunStatus] = "completed"
    final_output: Any = None

    def to_payload(self) -> dict[str, Any]:
        return {"final_output": self.final_output}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> RunCompleted:
        return cls(p.get("final_output"))


@dataclass(frozen=True)
class RunFailed:
    """The run raised: JSON {"error_type", "error"}, the exception's qualified name and
    message."""

    TYPE: ClassVar[str] = "run_failed"
    STATUS: ClassVar[RunStatus] = "failed"
    error_type: str | None = None
    error: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"error_type": self.error_type, "error": self.error}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> RunFailed:
        return cls(_get(p, "error_type", str, None), _get(p, "error", str, None))


@dataclass(frozen=True)
class RunCancelled:
    """The caller cancelled the run: JSON {"final_output": null} (as every version wrote it)."""

    TYPE: ClassVar[str] = "run_cancelled"
    STATUS: ClassVar[RunStatus] = "cancelled"

    def to_payload(self) -> dict[str, Any]:
        return {"final_output": None}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> RunCancelled:
        return cls()


@dataclass(frozen=True)
class RunAwaitingApproval:
    """The run stopped for tool calls that need approval: JSON {"final_output": null, "calls"}
    (`PendingCall`s; `calls` is None for a run recorded before they were named)."""

    TYPE: ClassVar[str] = "run_awaiting_approval"
    STATUS: ClassVar[RunStatus] = "awaiting_approval"
    calls: tuple[PendingCall, ...] | None = None

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"final_output": None}
        if self.calls is not None:
            payload["calls"] = [c.to_payload() for c in self.calls]
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> RunAwaitingApproval:
        calls = _objects(p, "calls")
        return cls(None if calls is None else tuple(PendingCall.from_payload(c) for c in calls))


@dataclass(frozen=True)
class RunQueued:
    """The run was started for a worker (`Runner.start`), to wait on a queue until one that
    knows its agent claims it: JSON {"queue", "agent_ref"} (`agent_ref` null when the agent is
    known by its name alone). The run's first event."""

    TYPE: ClassVar[str] = "run_queued"
    queue: str
    agent_ref: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"queue": self.queue, "agent_ref": self.agent_ref}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> RunQueued:
        return cls(_need(p, "queue", str), _get(p, "agent_ref", str, None))


@dataclass(frozen=True)
class RunForked:
    """The run was forked from another (`Engine.fork_run`, `runplane runs fork`): it shares that
    run's journal before step `at` (the event seq `runplane runs show` prints) and goes on live
    from there. JSON {"from_run", "at", "model_calls", "tool_outputs"}: the run forked, the step,
    and how many of its journal entries were copied. The run's first event."""

    TYPE: ClassVar[str] = "run_forked"
    from_run: str
    at: int
    model_calls: int = 0
    tool_outputs: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {
            "from_run": self.from_run,
            "at": self.at,
            "model_calls": self.model_calls,
            "tool_outputs": self.tool_outputs,
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> RunForked:
        return cls(
            _need(p, "from_run", str),
            _need(p, "at", int),
            _get(p, "model_calls", int, 0),
            _get(p, "tool_outputs", int, 0),
        )


@dataclass(frozen=True)
class UnknownEvent:
    """An event this version has no record for (a newer version's, or `tool_started` of the
    first one), or one whose payload does not fit its type (`problem` says why): kept as
    stored."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return self.payload


RunOutcome = RunCompleted | RunFailed | RunCancelled | RunAwaitingApproval
Event = (
    ModelCalled
    | ToolCalled
    | ApprovalRequested
    | ApprovalDecided
    | AttemptStarted
    | AttemptEnded
    | CancelRequested
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunAwaitingApproval
    | RunQueued
    | RunForked
)
_TYPES: dict[str, Any] = {
    cls.TYPE: cls
    for cls in (
        ModelCalled,
        ToolCalled,
        ApprovalRequested,
        ApprovalDecided,
        AttemptStarted,
        AttemptEnded,
        CancelRequested,
        RunCompleted,
        RunFailed,
        RunCancelled,
        RunAwaitingApproval,
        RunQueued,
        RunForked,
    )
}
EVENT_TYPES: tuple[str, ...] = tuple(_TYPES)


def parse(event: EventRecord | NewEvent) -> Event | UnknownEvent:
    """The typed record of a stored (or about to be stored) event; never raises."""
    cls = _TYPES.get(event.type)
    if cls is None:
        return UnknownEvent(event.type, event.payload)
    if not isinstance(event.payload, dict):
        return UnknownEvent(event.type, event.payload, "its payload is not an object")
    try:
        parsed: Event = cls.from_payload(event.payload)
    except ValueError as exc:
        return UnknownEvent(event.type, event.payload, f"not a {event.type} event: {exc}")
    return parsed


def outcome(
    status: RunStatus,
    *,
    final_output: Any = None,
    error_type: str | None = None,
    error: str | None = None,
    calls: Sequence[PendingCall] | None = None,
) -> RunOutcome:
    """The event that records a run's outcome (`RunSession.finish`); ValueError for
    "running", which is no outcome."""
    if status == "completed":
        return RunCompleted(final_output)
    if status == "failed":
        return RunFailed(error_type, error)
    if status == "cancelled":
        return RunCancelled()
    if status == "awaiting_approval":
        return RunAwaitingApproval(None if calls is None else tuple(calls))
    raise ValueError(
        f"{status!r} is not an outcome: 'completed', 'failed', 'cancelled' or 'awaiting_approval'"
    )


def in_full(
    events: Sequence[Event | UnknownEvent], journal: Sequence[JournalRecord]
) -> list[Event | UnknownEvent]:
    """`events` with every value kept in the journal only (a large tool output, arguments or
    model output: the event holds a preview) read back from it; a value the journal lacks stays
    a preview."""
    models = {e.key: e.payload for e in journal if e.kind == "model"}
    tools = {e.key: e.payload for e in journal if e.kind == "tool"}
    full: list[Event | UnknownEvent] = []
    for event in events:
        if isinstance(event, ToolCalled) and event.in_journal:
            event = _tool_in_full(event, tools.get(event.key))
        elif isinstance(event, ModelCalled) and event.in_journal:
            entry = models.get(str(event.ordinal))
            response = entry.get("response") if isinstance(entry, dict) else None
            event = _model_in_full(event, response if isinstance(response, dict) else {})
        full.append(event)
    return full


def _tool_in_full(event: ToolCalled, entry: Any) -> ToolCalled:
    if not isinstance(entry, dict):
        return event
    if event.arguments_preview is not None and isinstance(entry.get("arguments"), str):
        event = replace(event, arguments=entry["arguments"], arguments_preview=None)
    if event.output_preview is not None and entry.get("output") is not None:
        event = replace(event, output=entry["output"], output_preview=None)
    return event


def _model_in_full(event: ModelCalled, response: Mapping[str, Any]) -> ModelCalled:
    items = response.get("output")
    items = items if isinstance(items, list) else []
    if event.output_preview is not None and items:
        event = replace(event, output=items, output_preview=None)
    arguments = {
        item.get("call_id"): item.get("arguments")
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call"
    }
    calls = tuple(
        replace(c, arguments=arguments[c.call_id], arguments_preview=None)
        if isinstance(c, ToolRequest)
        and c.arguments_preview is not None
        and isinstance(arguments.get(c.call_id), str)
        else c
        for c in event.calls
    )
    return replace(event, calls=calls)
