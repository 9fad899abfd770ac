"""The event vocabulary (runplane_durable.events): each record through its payload and the JSON
of an EventRecord, every event an earlier version stored (the golden journals and older shapes),
and today's writers writing exactly what the recorded version wrote."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from hypothesis import given
from hypothesis import strategies as st
from runplane_durable import DurableBackend, LocalEngine, run_id
from runplane_durable.cli.runs import plain_value as cli_plain_value
from runplane_durable.codec import plain_value
from runplane_durable.events import (
    EVENT_TYPES,
    ApprovalDecided,
    ApprovalRequested,
    AttemptEnded,
    AttemptStarted,
    CancelRequested,
    HandoffRequested,
    ModelCalled,
    PendingCall,
    RunAwaitingApproval,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunForked,
    RunQueued,
    Stringified,
    TokenUsage,
    ToolCalled,
    ToolError,
    ToolRequest,
    UnknownEvent,
    in_full,
    outcome,
    parse,
)
from runplane_durable.names import tool_key
from runplane_durable.records import EventRecord, JournalRecord, NewEvent
from runplane_durable.runtime.intercept import INLINE_CHARS
from runplane_durable.serde import dump_json, dump_value, load_value
from support.durable import sqlite_url
from support.golden_files import golden_files, load_golden, table_rows
from support.golden_programs import PROGRAMS, Ledger, Stop
from support.golden_replay import run_agent

# -- strategies ------------------------------------------------------------------------------------

text = st.text(max_size=20)
maybe_text = st.none() | text
count = st.integers(min_value=0, max_value=2**40)
seconds = st.floats(min_value=0, max_value=1e9, allow_nan=False)
maybe_seconds = st.none() | seconds
json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
encoded = json_data.map(lambda v: {"json": v})


@st.composite
def _bounded(draw: Any, value: Any) -> tuple[Any, str | None]:
    """(value, None), or (None, a preview): the value in the journal only."""
    if draw(st.booleans()):
        return draw(value), None
    return None, draw(text)


@st.composite
def tool_requests(draw: Any) -> ToolRequest:
    arguments, preview = draw(_bounded(text))
    return ToolRequest(draw(text), draw(text), arguments, preview)


@st.composite
def model_calls(draw: Any) -> ModelCalled:
    output, preview = draw(_bounded(st.lists(json_data, max_size=3)))
    return ModelCalled(
        ordinal=draw(count),
        agent=draw(text),
        usage=draw(st.builds(TokenUsage, count, count, count, count)),
        seconds=draw(maybe_seconds),
        output=output,
        output_preview=preview,
        calls=tuple(
            draw(st.lists(tool_requests() | st.builds(HandoffRequested, text, text), max_size=3))
        ),
        streamed=draw(st.booleans()),
    )


@st.composite
def tool_calls(draw: Any) -> ToolCalled:
    arguments, arguments_preview = draw(_bounded(text))
    output, output_preview = draw(_bounded(encoded))
    return ToolCalled(
        name=draw(text),
        call_id=draw(text),
        key=draw(text),
        sdk_error=draw(st.booleans()),
        seconds=draw(maybe_seconds),
        stringified=draw(st.none() | st.builds(Stringified, text, text)),
        error=draw(st.none() | st.builds(ToolError, text, text)),
        arguments=arguments,
        arguments_preview=arguments_preview,
        output=output,
        output_preview=output_preview,
    )


pending = st.builds(PendingCall, text, text, text)
maybe_int = st.none() | count
EVENTS = st.one_of(
    model_calls(),
    tool_calls(),
    st.builds(ApprovalRequested, text, text, text, maybe_text),
    st.builds(ApprovalDecided, text, text, st.booleans(), st.booleans(), maybe_text, maybe_text),
    st.builds(
        AttemptStarted,
        maybe_int,
        maybe_text,
        maybe_text,
        maybe_int,
        st.none() | st.booleans(),
        count,
        count,
        maybe_seconds,
        maybe_seconds,
    ),
    st.builds(
        AttemptEnded,
        maybe_int,
        maybe_text,
        maybe_text,
        maybe_int,
        text,
        maybe_seconds,
        maybe_seconds,
    ),
    st.builds(
        CancelRequested,
        st.sampled_from(["immediate", "after_turn"]),
        maybe_text,
        maybe_int,
        maybe_text,
        maybe_seconds,
        maybe_text,
    ),
    st.builds(RunCompleted, st.none() | encoded),
    st.builds(RunFailed, maybe_text, maybe_text),
    st.just(RunCancelled()),
    st.builds(RunAwaitingApproval, st.none() | st.lists(pending, max_size=3).map(tuple)),
    st.builds(RunQueued, text, maybe_text),
    st.builds(RunForked, text, st.integers(0, 10**6), st.integers(0, 999), st.integers(0, 999)),
)


# -- round trips -----------------------------------------------------------------------------------


@given(EVENTS)
def test_every_event_comes_back_from_its_payload_and_the_json_of_its_record(event: Any) -> None:
    payload = event.to_payload()
    assert parse(NewEvent(event.TYPE, payload)) == event
    stored = EventRecord("r", 1, event.TYPE, payload, 1.5)
    wire = EventRecord.from_json(json.loads(json.dumps(stored.to_json())))
    assert parse(wire) == event
    # what a database stores: the payload as JSON text, read back
    assert parse(EventRecord("r", 1, event.TYPE, json.loads(dump_json(payload)), 1.5)) == event


def test_every_event_type_has_its_record() -> None:
    assert set(EVENT_TYPES) == {
        "model_call",
        "tool_call",
        "approval_requested",
        "approval_decided",
        "attempt_started",
        "attempt_ended",
        "cancel_requested",
        "run_completed",
        "run_failed",
        "run_cancelled",
        "run_awaiting_approval",
        "run_queued",
        "run_forked",
    }


def test_an_unknown_type_is_kept_as_it_was_stored() -> None:
    # `tool_started`: the first version's event before a tool ran; or a newer version's event
    stored = EventRecord("r", 3, "tool_started", {"key": "0:c1", "name": "a"}, 0.0)
    parsed = parse(stored)
    assert parsed == UnknownEvent("tool_started", {"key": "0:c1", "name": "a"})
    assert parsed.problem is None
    assert parsed.to_payload() == stored.payload


@pytest.mark.parametrize(
    ("kind", "payload", "problem"),
    [
        ("model_call", {"agent": "a"}, "no 'ordinal'"),
        ("model_call", {"ordinal": "1", "agent": "a"}, "'ordinal' is a str"),
        ("model_call", {"ordinal": True, "agent": "a"}, "not a number"),
        ("model_call", {"ordinal": 0, "agent": "a", "calls": ["x"]}, "not an object"),
        ("tool_call", {"name": "a", "call_id": "c"}, "no 'key'"),
        ("approval_decided", {"call_id": "c", "key": "1:c"}, "'approved'"),
        ("run_awaiting_approval", {"calls": [{"name": "b"}]}, "no 'call_id'"),
        ("run_failed", [], "not an object"),
        ("cancel_requested", {"host": "h"}, "no 'mode'"),
        ("cancel_requested", {"mode": "immediate", "pid": "12"}, "'pid' is a str"),
    ],
)
def test_a_payload_that_does_not_fit_its_type_parses_as_unknown_saying_why(
    kind: str, payload: Any, problem: str
) -> None:
    parsed = parse(EventRecord("r", 1, kind, payload, 0.0))
    assert isinstance(parsed, UnknownEvent), parsed
    assert parsed.type == kind
    assert parsed.payload == payload
    assert parsed.problem is not None
    assert problem in parsed.problem, parsed.problem


# -- what earlier versions stored ------------------------------------------------------------------

GOLDEN = golden_files()


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_every_golden_event_parses_and_writes_back_byte_for_byte(path: Path) -> None:
    for row in table_rows(load_golden(path), "runplane_events"):
        payload = json.loads(row["payload"])
        parsed = parse(EventRecord(row["run_id"], row["seq"], row["type"], payload, 0.0))
        assert not isinstance(parsed, UnknownEvent), (path.name, row)
        assert dump_json(parsed.to_payload()) == row["payload"], (path.name, row["seq"])


OLDER: list[tuple[str, dict[str, Any]]] = [
    # model calls before their latency was recorded (runplane-durable before e987478)
    (
        "model_call",
        {
            "ordinal": 0,
            "agent": "a",
            "usage": {"requests": 1, "input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
            "output": [],
            "calls": [{"type": "tool", "name": "t", "call_id": "c", "arguments": "{}"}],
            "streamed": False,
        },
    ),
    # a tool call without `error` or `stringified` (before they were recorded)
    (
        "tool_call",
        {
            "name": "t",
            "call_id": "c",
            "sdk_error": False,
            "key": "1:c",
            "seconds": 0.1,
            "arguments": "{}",
            "output": {"json": "ok"},
        },
    ),
    # a run awaiting approval before the waiting calls were named
    ("run_awaiting_approval", {"final_output": None}),
    ("run_cancelled", {"final_output": None}),
    # the end an attempt never wrote, written by the next one
    (
        "attempt_ended",
        {
            "attempt": 1,
            "owner": "h:1:t:1",
            "host": "h",
            "pid": 1,
            "reason": "killed",
            "ended_at": None,
            "detected_at": 9.5,
        },
    ),
]


@pytest.mark.parametrize(
    ("kind", "payload"), OLDER, ids=[f"{k}-{i}" for i, (k, _) in enumerate(OLDER)]
)
def test_an_older_payload_shape_parses_and_writes_back_as_it_was(
    kind: str, payload: dict[str, Any]
) -> None:
    parsed = parse(EventRecord("r", 1, kind, payload, 0.0))
    assert not isinstance(parsed, UnknownEvent), parsed
    assert dump_json(parsed.to_payload()) == dump_json(payload)


def test_older_shapes_read_as_what_they_lack() -> None:
    model = parse(NewEvent(*OLDER[0]))
    assert isinstance(model, ModelCalled)
    assert model.seconds is None
    waiting = parse(NewEvent(*OLDER[2]))
    assert isinstance(waiting, RunAwaitingApproval)
    assert waiting.calls is None
    # an attempt event with no number, owner or usage (tolerated, never written)
    bare = parse(NewEvent("attempt_started", {}))
    assert bare == AttemptStarted(None, None)
    usage = parse(NewEvent("model_call", {"ordinal": 2, "agent": "a", "usage": {}}))
    assert isinstance(usage, ModelCalled)
    assert usage.usage == TokenUsage()


# -- the writers: what the recorded version wrote, key for key -------------------------------------

# Values that differ from one execution to the next.
VOLATILE = {"seconds", "owner", "host", "pid", "started_at", "ended_at", "detected_at"}


def _shape(value: Any) -> Any:
    """`value` with its keys in their order and volatile values blanked."""
    if isinstance(value, dict):
        return [(k, None if k in VOLATILE else _shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return value


LIVE = [n for n, p in PROGRAMS.items() if p.crash_at is None]


@pytest.mark.parametrize("name", LIVE)
def test_todays_writers_write_what_the_recorded_version_wrote(name: str, tmp_path: Path) -> None:
    """Each golden program, run live today, logs the same events as when it was recorded: the
    same types, keys in the same order, the same values but for times and the lease holder."""
    program = PROGRAMS[name]
    # The newest version's file: what today's writers must still write.
    golden = max(
        (g for g in map(load_golden, GOLDEN) if g["program"] == name),
        key=lambda g: int(g["schema_version"]),
    )
    url = sqlite_url(tmp_path)

    async def live() -> dict[str, list[Any]]:
        models = {n: ScriptedModel(steps) for n, steps in program.script().items()}
        ledger = Ledger(stop_at=program.stop_at, crash_at=program.crash_at)
        agent = next(iter(program.agents(models.__getitem__, ledger).values()))
        for _ in range(2 if program.stop_at is not None else 1):
            with contextlib.suppress(Stop):
                await run_agent(url, agent, program.prompt, program.mode, program.run_id)
        engine = LocalEngine(url)
        try:
            return {
                r.id: [(e.type, _shape(e.payload)) for e in await engine.list_events(r.id)]
                for r in await engine.list_runs(limit=None)
            }
        finally:
            await engine.dispose()

    recorded: dict[str, list[Any]] = {}
    for row in table_rows(golden, "runplane_events"):
        recorded.setdefault(row["run_id"], []).append(
            (row["type"], _shape(json.loads(row["payload"])))
        )
    assert asyncio.run(live()) == recorded


def test_a_large_value_is_a_preview_in_the_event_and_whole_in_full(tmp_path: Path) -> None:
    big = "x" * (INLINE_CHARS + 1)

    @function_tool
    def echo(text: str) -> str:
        return text * 2

    arguments = json.dumps({"text": big})
    model = ScriptedModel(
        [[function_call("echo", arguments, call_id="c1")], [assistant_message(big)]]
    )
    url = sqlite_url(tmp_path)

    async def go() -> tuple[list[EventRecord], list[JournalRecord]]:
        backend = DurableBackend(LocalEngine(url))
        try:
            with run_id("big"):
                await backend.run(Agent(name="a", model=model, tools=[echo]), "go")
            return await backend.engine.list_events("big"), await backend.engine.read_journal("big")
        finally:
            await backend.engine.dispose()

    events, journal = asyncio.run(go())
    parsed = [parse(e) for e in events]
    (asked, said) = [p for p in parsed if isinstance(p, ModelCalled)]
    (ran,) = [p for p in parsed if isinstance(p, ToolCalled)]
    assert asked.in_journal
    assert asked.tools[0].arguments is None
    assert asked.tools[0].arguments_preview == arguments[:500]
    assert ran.in_journal
    assert ran.output is None
    assert ran.arguments is None
    assert said.in_journal
    assert said.output is None
    assert asked.key_of(asked.tools[0]) == ran.key == tool_key(1, "c1")
    full = in_full(parsed, journal)
    f_asked, f_ran, f_said = (full[parsed.index(p)] for p in (asked, ran, said))
    assert isinstance(f_asked, ModelCalled)
    assert f_asked.tools[0].arguments == arguments
    assert isinstance(f_ran, ToolCalled)
    assert plain_value(f_ran.output) == big * 2
    assert isinstance(f_said, ModelCalled)
    assert f_said.text() == big
    assert not any(getattr(e, "in_journal", False) for e in full)
    # a journal without the value leaves the preview
    assert in_full(parsed, []) == parsed


def test_outcome_is_the_event_of_each_status() -> None:
    calls = [PendingCall("c1", "refund", "1:c1")]
    assert outcome("completed", final_output={"json": 1}) == RunCompleted({"json": 1})
    assert outcome("failed", error_type="builtins.ValueError", error="no") == RunFailed(
        "builtins.ValueError", "no"
    )
    assert outcome("cancelled") == RunCancelled()
    assert outcome("awaiting_approval", calls=calls) == RunAwaitingApproval(tuple(calls))
    with pytest.raises(ValueError, match="'running' is not an outcome"):
        outcome("running")


# -- the value tags --------------------------------------------------------------------------------


@given(json_data)
def test_plain_value_reads_what_dump_value_wrote(value: Any) -> None:
    assert plain_value(dump_value(value, what="t")) == value
    assert plain_value(dump_value((value, [value]), what="t")) == [value, [value]]
    assert plain_value(dump_value({"k": (value,)}, what="t")) == {"k": [value]}


def test_plain_value_of_a_model_reads_its_data_without_rebuilding_it() -> None:
    from support.golden_programs import Invoice, LineItem

    invoice = Invoice(customer="c-1", items=[LineItem(sku="a", cents=250)], total_cents=250)
    stored = dump_value(invoice, what="t")
    assert load_value(stored) == invoice
    assert plain_value(stored) == invoice.model_dump(mode="json")
    assert plain_value({"display": "<Thing>"}) == "<Thing>"
    assert plain_value("as is") == "as is"
    assert cli_plain_value is plain_value  # still importable where the CLI had it
