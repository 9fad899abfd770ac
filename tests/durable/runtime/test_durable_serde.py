"""Journal values round-trip to equal values of the same types, or are refused up front."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pydantic
import pytest
from agents.items import ModelResponse
from agents.testing import assistant_message, function_call
from agents.usage import Usage
from hypothesis import given
from hypothesis import strategies as st
from runplane_durable import JournalSerializationError
from runplane_durable.serde import (
    dump_display,
    dump_json,
    dump_model_response,
    dump_value,
    fingerprint,
    load_json,
    load_model_response,
    load_value,
)


class Point(pydantic.BaseModel):
    x: int
    y: float
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class Box:
    corner: tuple[int, int]
    tags: list[str]


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
points = st.builds(
    Point,
    x=st.integers(),
    y=st.floats(allow_nan=False, allow_infinity=False),
    label=st.none() | st.text(),
)
boxes = st.builds(Box, corner=st.tuples(st.integers(), st.integers()), tags=st.lists(st.text()))
values = st.recursive(
    scalars | points | boxes,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(values)
def test_values_round_trip_through_stored_json(value: Any) -> None:
    stored = dump_json(dump_value(value, what="tool 't'"))
    assert _same(load_value(load_json(stored)), value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (object(), "result: object (its type is not one the journal stores)"),
        ({1, 2}, "result: set (its type is not one the journal stores)"),
        ({1: "int key"}, "result: dict (its key 1 is not a str)"),
        (math.nan, "result: float (JSON has no nan)"),
        ([1, {"x": math.inf}], 'result[1]["x"]: float (JSON has no inf)'),
        (b"bytes", "result: bytes (its type is not one the journal stores)"),
    ],
)
def test_unstorable_values_are_refused_with_advice(value: Any, why: str) -> None:
    with pytest.raises(JournalSerializationError) as info:
        dump_value(value, what="tool 'lookup'")
    message = str(info.value)
    assert "tool 'lookup' returned" in message
    assert why in message
    assert "run again with the same run id" in message


def test_a_class_from_a_module_not_imported_is_not_imported_by_a_replay() -> None:
    encoded = {"type": "some_module_never_imported_xyz:Thing", "data": {}}
    with pytest.raises(JournalSerializationError, match="is not imported in this process"):
        load_value(encoded)


@given(
    st.lists(st.sampled_from(["text", "call"]), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=10_000),
)
def test_model_responses_round_trip_exactly(kinds: list[str], tokens: int) -> None:
    output = [
        assistant_message(f"m{i}", item_id=f"msg_{i}")
        if kind == "text"
        else function_call("tool", {"i": i}, call_id=f"call_{i}")
        for i, kind in enumerate(kinds)
    ]
    response = ModelResponse(
        output=output,
        usage=Usage(requests=1, input_tokens=tokens, output_tokens=1, total_tokens=tokens + 1),
        response_id="resp_1",
    )
    restored = load_model_response(json.loads(dump_json(dump_model_response(response))))
    assert restored.usage == response.usage
    assert [o.model_dump(exclude_unset=True) for o in restored.output] == [
        o.model_dump(exclude_unset=True) for o in output
    ]


def test_an_unstorable_final_output_is_kept_for_display_without_warnings() -> None:
    """A replay reproduces the final output, so it never fails a finished run; and pydantic
    must not print the value in a warning (it may be secret)."""
    import warnings

    odd = Point.model_construct(x={"secret": "s3cret"}, y=1.0)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stored = dump_display(odd)
        assert stored == {"display": {"x": {"secret": "s3cret"}, "y": 1.0, "label": None}}
        assert dump_display(object())["display"].startswith("<object")  # never raises
        with pytest.raises(JournalSerializationError, match="could not round-trip"):
            dump_value(odd, what="tool 't'")  # a tool output must round-trip: refused, silently


# Request fingerprints: a replay compares them across processes and versions of a program, so
# they must depend on what was asked, never on dict order or on how an item was represented.
json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_data, min_size=1, max_size=6))
def test_fingerprints_ignore_dict_order(request: dict[str, Any]) -> None:
    reordered = dict(reversed(list(request.items())))
    assert fingerprint(request) == fingerprint(reordered)
    assert len(fingerprint(request)) == 32


@given(points, boxes)
def test_fingerprints_see_models_and_dataclasses_as_their_data(point: Point, box: Box) -> None:
    as_objects = {"input": [point, box]}
    as_data = {
        "input": [
            point.model_dump(mode="json", exclude_none=True),
            {"corner": list(box.corner), "tags": box.tags},
        ]
    }
    assert fingerprint(as_objects) == fingerprint(as_data)


def test_fingerprints_tell_different_requests_apart() -> None:
    assert fingerprint({"input": ["a"]}) != fingerprint({"input": ["b"]})
    assert fingerprint({"input": [Point(x=1, y=2)]}) != fingerprint({"input": [Point(x=1, y=3)]})


def test_fingerprints_accept_keys_that_json_cannot_sort() -> None:
    # Mixed key types make the encoder's sort fail; they are compared as text instead.
    mixed = {"tools": {1: "a", "b": 2, None: [{2: Box(corner=(1, 2), tags=[])}]}}
    assert fingerprint(mixed) == fingerprint(
        {"tools": {"1": "a", "b": 2, "None": [{"2": {"corner": [1, 2], "tags": []}}]}}
    )
