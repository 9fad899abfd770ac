"""The engine contract's records: each one's JSON form is lossless, and bad JSON is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runplane_durable.records import (
    EventRecord,
    JournalEntry,
    JournalRecord,
    NewEvent,
    RunRecord,
    RunSpec,
    TaskLease,
    TaskRecord,
    TaskResult,
    TaskSpec,
    UsageDelta,
)

# Text with every code point, lone surrogates included (a tool may return them; json escapes them).
text = st.text(st.characters(exclude_categories=()), max_size=12)
floats = st.floats(allow_nan=False, allow_infinity=False)
json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
json_object = st.dictionaries(text, json_data, max_size=4)
counts = st.integers(min_value=0, max_value=2**53)
maybe_text = st.none() | text
maybe_float = st.none() | floats

specs = st.builds(
    RunSpec,
    run_id=text,
    agent_name=text,
    input=json_data,
    input_fingerprint=text,
    options=json_object,
    named=st.booleans(),
    agent_ref=maybe_text,
    queue=maybe_text,
)
runs = st.builds(
    RunRecord,
    id=text,
    agent_name=text,
    status=st.sampled_from(["running", "awaiting_approval", "completed", "failed", "cancelled"]),
    input=json_data,
    options=json_object,
    created_at=floats,
    updated_at=floats,
    finished_at=maybe_float,
    owner=maybe_text,
    lease_expires_at=maybe_float,
    model_calls=counts,
    tool_calls=counts,
    requests=counts,
    input_tokens=counts,
    output_tokens=counts,
    total_tokens=counts,
    final_output=json_data,
    error_type=maybe_text,
    error=maybe_text,
    input_fingerprint=text,
)
kinds = st.sampled_from(["model", "tool"])
entries = st.builds(JournalEntry, kind=kinds, key=text, fingerprint=maybe_text, payload=json_data)
journal_records = st.builds(
    JournalRecord,
    kind=kinds,
    key=text,
    fingerprint=maybe_text,
    payload=json_data,
    seq=counts,
)
new_events = st.builds(NewEvent, type=text, payload=json_object)
event_records = st.builds(
    EventRecord, run_id=text, seq=counts, type=text, payload=json_object, created_at=floats
)
# What a usage delta may add: a count an integer column holds.
usage_counts = st.integers(0, 2**31 - 1)
usages = st.builds(
    UsageDelta,
    model_calls=usage_counts,
    tool_calls=usage_counts,
    requests=usage_counts,
    input_tokens=usage_counts,
    output_tokens=usage_counts,
    total_tokens=usage_counts,
)
# A remote tool call's payloads: the model's arguments (any text) and the run's context, as
# the codec encodes it (plain JSON data, or a model or dataclass by its import path).
encoded_context = (
    st.none()
    | st.builds(lambda v: {"json": v}, json_data)
    | st.builds(lambda t, d: {"type": t, "data": d}, text, json_data)
)
task_specs = st.builds(
    TaskSpec,
    run_id=text,
    call_key=text,
    queue=text,
    tool_name=text,
    call_id=text,
    arguments=text,
    context=encoded_context,
    max_attempts=counts,
    timeout=maybe_float,
    retry_delay=floats,
)
task_results = st.builds(
    TaskResult,
    kind=st.sampled_from(["ok", "error"]),
    output=json_data,
    error_type=maybe_text,
    error=maybe_text,
)
task_leases = st.builds(TaskLease, task_id=text, owner=text, attempt=counts, lease_seconds=floats)
task_records = st.builds(
    TaskRecord,
    id=text,
    run_id=text,
    call_key=text,
    queue=text,
    tool_name=text,
    call_id=text,
    arguments=text,
    context=encoded_context,
    status=st.sampled_from(["pending", "running", "completed", "failed"]),
    attempts=counts,
    max_attempts=counts,
    timeout=maybe_float,
    retry_delay=floats,
    owner=maybe_text,
    lease_expires_at=maybe_float,
    available_at=floats,
    result=st.none() | task_results,
    error=maybe_text,
    created_at=floats,
    updated_at=floats,
)
records = (
    specs
    | runs
    | entries
    | journal_records
    | new_events
    | event_records
    | usages
    | task_specs
    | task_results
    | task_leases
    | task_records
)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


@settings(max_examples=300)
@given(records)
def test_every_record_comes_back_from_json_text_as_it_was(record: Any) -> None:
    data = record.to_json()
    assert _is_json(data)
    back = type(record).from_json(json.loads(json.dumps(data)))
    assert back == record
    assert type(back) is type(record)
    if isinstance(record, RunSpec):  # not part of equality, still part of the form
        assert (back.named, back.agent_ref, back.queue) == (
            record.named,
            record.agent_ref,
            record.queue,
        )


def test_the_json_form_names_each_field() -> None:
    entry = JournalRecord("tool", "0:call-a", None, {"json": [1.5, "é"]}, seq=3)
    assert entry.to_json() == {
        "kind": "tool",
        "key": "0:call-a",
        "fingerprint": None,
        "payload": {"json": [1.5, "é"]},
        "seq": 3,
    }
    assert entry.entry == JournalEntry("tool", "0:call-a", None, {"json": [1.5, "é"]})
    assert UsageDelta.from_json({"tool_calls": 1}) == UsageDelta(tool_calls=1)
    assert NewEvent.from_json({"type": "tool_call"}) == NewEvent("tool_call")


@pytest.mark.parametrize(
    ("cls", "data", "says"),
    [
        (UsageDelta, [1, 2], "a UsageDelta in JSON is an object, got list"),
        (NewEvent, {"payload": {}}, "missing type"),
        (UsageDelta, {"tool_calls": 1, "tools": 2}, "unknown tools"),
        (UsageDelta, {"tool_calls": 2**31}, "usage 'tool_calls' must be from 0 to 2147483647"),
        (UsageDelta, {"requests": -1}, "usage 'requests' must be from 0 to"),
        (UsageDelta, {"requests": True}, "usage 'requests' must be an integer, got bool"),
        (UsageDelta, {"requests": 1.5}, "usage 'requests' must be an integer, got float"),
        (JournalEntry, {"kind": "llm", "key": "1", "fingerprint": None, "payload": {}}, "'llm'"),
        (
            JournalRecord,
            {"kind": "tool", "key": "1", "fingerprint": None, "payload": {}},
            "missing seq",
        ),
        (TaskResult, {"kind": "crashed"}, "'crashed' is not a task outcome"),
        (TaskLease, {"task_id": "t", "owner": "w", "attempt": 1}, "missing lease_seconds"),
    ],
)
def test_json_that_is_not_the_record_is_refused_saying_why(cls: Any, data: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        cls.from_json(data)


def test_a_run_record_with_an_unknown_status_is_refused() -> None:
    data = RunRecord(
        "r", "a", "running", {}, {}, 0.0, 0.0, None, None, None, 0, 0, 0, 0, 0, 0, None, None, None
    ).to_json()
    data["status"] = "paused"
    expected = "'paused' is not a run status; use one of: queued, running"
    with pytest.raises(ValueError, match=expected):
        RunRecord.from_json(data)


def test_a_task_record_with_an_unknown_status_is_refused_and_its_result_is_nested() -> None:
    record = TaskRecord(
        "t", "r", "0:c", "q", "lookup", "c", "{}", None, "completed", 1, 3, None, 1.0,
        None, None, 0.0, TaskResult("ok", output={"json": 1}), None, 0.0, 0.0,
    )  # fmt: skip
    data = record.to_json()
    assert data["result"] == {
        "kind": "ok",
        "output": {"json": 1},
        "error_type": None,
        "error": None,
    }
    data["status"] = "lost"
    with pytest.raises(ValueError, match="'lost' is not a task status; use one of: pending"):
        TaskRecord.from_json(data)
