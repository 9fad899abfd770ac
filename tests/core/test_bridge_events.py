"""The host event vocabulary: JSON-safe dicts that read back to the same events, no SDK import."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runplane.bridge import events as ev

_text = st.text(max_size=20)
_count = st.integers(min_value=0, max_value=10**9)
_usage = st.builds(
    ev.UsageTotals,
    requests=_count,
    input_tokens=_count,
    output_tokens=_count,
    total_tokens=_count,
)


def _strategy(cls: type[ev.HostEvent]) -> st.SearchStrategy[ev.HostEvent]:
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for name, annotation in cls.__annotations__.items():
        if name == "kind":
            continue
        kwargs[name] = {
            "str": _text,
            "int": _count,
            "bool": st.booleans(),
            "str | None": st.none() | _text,
            "UsageTotals": _usage,
        }[annotation]
    return st.builds(cls, run_id=_text, agent_name=_text, **kwargs)


events = st.one_of([_strategy(cls) for cls in ev.EVENT_TYPES.values()])


@given(events)
def test_to_dict_is_json_and_reads_back(event: ev.HostEvent) -> None:
    data = event.to_dict()
    assert data["kind"] == event.kind
    assert json.loads(json.dumps(data)) == data
    assert ev.event_from_dict(json.loads(json.dumps(data))) == event


def test_every_event_class_is_in_the_union_and_frozen() -> None:
    assert set(ev.EVENT_TYPES.values()) == set(ev.HostEvent.__args__)  # type: ignore[attr-defined]
    assert len(ev.EVENT_TYPES) == 14
    started = ev.RunStarted(run_id="r", agent_name="a")
    with pytest.raises(AttributeError):
        started.run_id = "other"  # type: ignore[misc]
    assert not hasattr(started, "__dict__")  # slots


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        ev.TextDelta("r", "a", "m", "d")  # type: ignore[call-arg]


def test_approval_decided_reads_back_without_a_message() -> None:
    data = {
        "kind": "approval_decided",
        "run_id": "r",
        "agent_name": "a",
        "call_id": "c",
        "tool_name": "t",
        "approved": False,
    }
    assert ev.event_from_dict(data) == ev.ApprovalDecided(
        run_id="r", agent_name="a", call_id="c", tool_name="t", approved=False, message=None
    )


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"run_id": "r"}, "kind None is none of"),
        ({"kind": "nope"}, "kind 'nope' is none of"),
        ({"kind": "text_delta", "run_id": "r", "agent_name": "a"}, "missing fields ['delta'"),
        (
            {"kind": "run_started", "run_id": "r", "agent_name": "a", "extra": 1},
            "unknown fields ['extra']",
        ),
        (
            {
                "kind": "run_finished",
                "run_id": "r",
                "agent_name": "a",
                "final_output": "x",
                "usage": {"requests": 1},
            },
            "usage must be a dict of",
        ),
    ],
)
def test_a_dict_that_is_no_event_is_refused_saying_why(data: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match="event") as info:
        ev.event_from_dict(data)
    assert says in str(info.value)


def test_the_vocabulary_imports_no_sdk() -> None:
    code = "import sys, runplane.bridge; assert 'agents' not in sys.modules, 'SDK imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
