"""A tool's outcome in the history: what the model saw, what the tool raised, how long it took.

A tool output the journal cannot store exactly is stored as the text the SDK shows the model,
byte for byte as the SDK's own runner makes it, live and on replay; refused (naming where in it
the unstorable part is) only where the object itself may become the run's final output. A tool
that raised keeps its exception's type and message beside the SDK's failure text.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import uuid
from typing import Any

import pydantic
import pytest
from agents import Agent, StopAtTools, ToolsToFinalOutputResult, UserError, function_tool
from agents.run import AgentRunner
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from hypothesis import given
from hypothesis import strategies as st
from runplane_durable import (
    DurableBackend,
    EventRecord,
    JournalSerializationError,
    LocalEngine,
    run_id,
)
from runplane_durable.serde import dump_value, type_name
from support.durable import run_async

WHEN = datetime.datetime(2026, 12, 1, 14, 30, tzinfo=datetime.timezone.utc)


class Report(pydantic.BaseModel):
    text: str


class Invoice:
    """A custom object with no JSON form: the SDK shows the model its str()."""

    def __str__(self) -> str:
        return "Invoice #7 (unpaid)"


class _Bare:
    pass


BARE = _Bare()  # str() is its repr, with its address: the same object in every run of the test

OUTPUTS: dict[str, Any] = {
    "datetime": WHEN,
    "custom object": Invoice(),
    "bare object": BARE,
    "dict holding a datetime": {"when": WHEN, "n": 1},
    "list holding a set": [1, {2, 3}],
    "infinity": {"x": math.inf},
    "int keys": {1: "one"},
}


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class _Script:
    """Asks for the tool, then answers; records each model call's input. `fail_second` makes
    the second call raise, as a crash right after the tool's output was journaled would."""

    def __init__(self, *, fail_second: bool = False) -> None:
        self.inputs: list[Any] = []
        self.fail_second = fail_second

    def respond(self, call: ModelCall) -> list[Any]:
        self.inputs.append(call.input)
        if len(self.inputs) == 1:
            return [function_call("produce", {}, call_id="p1")]
        if self.fail_second:
            raise RuntimeError("the process died here")
        return [assistant_message("done")]

    def model(self) -> ScriptedModel:
        return ScriptedModel([ModelStep.respond(self.respond) for _ in range(2)])

    def tool_output_seen(self) -> Any:
        """The function_call_output the model was given on its second call."""
        (item,) = [i for i in self.inputs[1] if _field(i, "type") == "function_call_output"]
        return _field(item, "output")


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name)


def _agent(script: _Script, value: Any, **options: Any) -> Agent[Any]:
    @function_tool
    def produce() -> Any:
        """Produce the value."""
        return value

    return Agent(name="producer", tools=[produce], model=script.model(), **options)


def _events(backend: DurableBackend, rid: str) -> list[EventRecord]:
    result: list[EventRecord] = run_async(backend.engine.list_events(rid))
    return result


@pytest.mark.parametrize("case", list(OUTPUTS))
def test_an_output_the_journal_cannot_store_reaches_the_model_as_the_sdk_shows_it_live_and_replayed(
    db_url: str, case: str
) -> None:
    value = OUTPUTS[case]
    sdk = _Script()
    AgentRunner().run_sync(_agent(sdk, value), "go")
    expected = sdk.tool_output_seen()
    assert expected == str(value)  # the SDK's own stringification

    rid = _unique("stringified")
    live = _Script(fail_second=True)
    backend = DurableBackend(LocalEngine(db_url))
    with run_id(rid), pytest.raises(RuntimeError, match="the process died here"):
        backend.run_sync(_agent(live, value), "go")
    assert live.tool_output_seen() == expected  # byte for byte, live

    resumed = _Script()
    calls = []

    @function_tool(name_override="produce")
    def produce_again() -> Any:
        """Produce the value."""
        calls.append(1)
        return value

    agent = Agent(name="producer", tools=[produce_again], model=resumed.model())
    resumed.inputs.append(live.inputs[0])  # model call #1 comes from the journal
    with run_id(rid):
        result = backend.run_sync(agent, "go")
    assert result.final_output == "done"
    assert calls == []  # the journaled output was replayed
    assert resumed.tool_output_seen() == expected  # and on replay
    (event,) = [e.payload for e in _events(backend, rid) if e.type == "tool_call"]
    assert event["output"] == {"json": expected}
    assert event["stringified"]["type"] == type_name(type(value))
    run_async(backend.engine.dispose())


def test_an_unstorable_output_that_becomes_the_final_output_itself_is_refused_by_its_path(
    sqlite_backend: DurableBackend,
) -> None:
    agent = _agent(
        _Script(), {"when": WHEN}, tool_use_behavior="stop_on_first_tool", output_type=Report
    )
    # with an output type, the SDK returns the object itself: a replay would have to as well
    assert AgentRunner().run_sync(agent.clone(model=_Script().model()), "go").final_output == {
        "when": WHEN
    }
    with run_id(_unique("final")), pytest.raises(JournalSerializationError) as info:
        sqlite_backend.run_sync(agent, "go")
    message = str(info.value)
    assert 'result["when"]: datetime.datetime' in message
    assert f"'stop_on_first_tool' and its output_type is {Report}" in message
    assert ".isoformat()" in message
    assert info.value.path == 'result["when"]'


def test_a_final_output_the_sdk_stringifies_is_stored_as_that_text(db_url: str) -> None:
    """With no output type the SDK's final output is str() of the tool's output: the text."""
    value = {"when": WHEN}
    agent = _agent(_Script(), value, tool_use_behavior="stop_on_first_tool")
    expected = AgentRunner().run_sync(agent.clone(model=_Script().model()), "go").final_output
    assert expected == str(value)
    backend = DurableBackend(LocalEngine(db_url))
    rid = _unique("final-text")
    with run_id(rid):
        assert backend.run_sync(agent, "go").final_output == expected
    with run_id(rid):  # finished: replayed from the journal
        assert backend.run_sync(agent.clone(model=_Script().model()), "go").final_output == expected
    run_async(backend.engine.dispose())


def test_stop_at_other_tools_leaves_this_tool_stored_as_the_model_sees_it(
    sqlite_backend: DurableBackend,
) -> None:
    script = _Script()
    agent = _agent(script, WHEN, tool_use_behavior=StopAtTools(stop_at_tool_names=["other"]))
    with run_id(_unique("stop-other")):
        assert sqlite_backend.run_sync(agent, "go").final_output == "done"
    assert script.tool_output_seen() == str(WHEN)


def test_a_tool_that_raised_keeps_its_exception_beside_what_the_model_saw(db_url: str) -> None:
    @function_tool
    def fetch() -> str:
        """Fetch."""
        raise ConnectionError("upstream 503")

    script = _Script()
    script_respond = script.respond

    def respond(call: ModelCall) -> list[Any]:
        out = script_respond(call)
        return [function_call("fetch", {}, call_id="f1")] if len(script.inputs) == 1 else out

    rid = _unique("raised")
    backend = DurableBackend(LocalEngine(db_url))
    agent = Agent(
        name="fetcher",
        tools=[fetch],
        model=ScriptedModel([ModelStep.respond(respond) for _ in range(2)]),
    )
    with run_id(rid):
        backend.run_sync(agent, "go")
    seen = script.tool_output_seen()
    assert "An error occurred while running the tool" in seen
    (event,) = [e.payload for e in _events(backend, rid) if e.type == "tool_call"]
    assert event["output"] == {"json": seen}  # what the model was shown, replayed as such
    assert event["error"] == {"type": "ConnectionError", "message": "upstream 503"}
    assert event["sdk_error"] is True
    run_async(backend.engine.dispose())


def test_model_calls_and_tools_say_how_long_they_took(sqlite_backend: DurableBackend) -> None:
    @function_tool
    async def slow() -> str:
        """Take a while."""
        await asyncio.sleep(0.05)
        return "ok"

    def respond(call: ModelCall) -> list[Any]:
        import time

        time.sleep(0.03)
        items = call.input if isinstance(call.input, list) else []
        if any(_field(i, "type") == "function_call_output" for i in items):
            return [assistant_message("done")]
        return [function_call("slow", {}, call_id="s1")]

    rid = _unique("timed")
    agent = Agent(
        name="timed",
        tools=[slow],
        model=ScriptedModel([ModelStep.respond(respond) for _ in range(2)]),
    )
    with run_id(rid):
        sqlite_backend.run_sync(agent, "go")
    events = _events(sqlite_backend, rid)
    models = [e.payload["seconds"] for e in events if e.type == "model_call"]
    tools = [e.payload["seconds"] for e in events if e.type == "tool_call"]
    assert len(models) == 2
    assert all(0.03 <= s < 5 for s in models)
    assert len(tools) == 1
    assert 0.05 <= tools[0] < 5


# -- where the first unstorable part is ---------------------------------------------------------

storable = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
unstorable = st.sampled_from([WHEN, BARE, math.nan, {1, 2}, b"x"])
leaves = storable.map(lambda v: (v, False)) | unstorable.map(lambda v: (v, True))


def _tree(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3).map(lambda items: ("list", items)) | st.dictionaries(
        st.text(max_size=4), children, max_size=3
    ).map(lambda items: ("dict", items))


trees = st.recursive(leaves.map(lambda leaf: ("leaf", leaf)), _tree, max_leaves=10)


def _build(tree: Any, path: str) -> tuple[Any, str | None]:
    """The value, and the path of its first unstorable leaf in the order the journal walks."""
    kind, content = tree
    if kind == "leaf":
        value, bad = content
        return value, path if bad else None
    first: str | None = None
    if kind == "list":
        items = []
        for i, child in enumerate(content):
            value, bad = _build(child, f"{path}[{i}]")
            items.append(value)
            first = first or bad
        return items, first
    built = {}
    for key, child in content.items():
        value, bad = _build(child, f"{path}[{json.dumps(key, ensure_ascii=False)}]")
        built[key] = value
        first = first or bad
    return built, first


@given(trees)
def test_the_path_named_is_where_the_first_unstorable_leaf_is(tree: Any) -> None:
    value, first = _build(tree, "result")
    if first is None:
        dump_value(value, what="tool 't'")  # all storable: stored
        return
    with pytest.raises(JournalSerializationError) as info:
        dump_value(value, what="tool 't'")
    assert info.value.path == first
    assert f"{first}: " in str(info.value)


SCHEMA = {
    "type": "object",
    "properties": {"when": {"type": "string"}},
    "required": ["when"],
    "additionalProperties": False,
}


def _schema_agent(script: _Script, value: Any) -> Agent[Any]:
    @function_tool(output_json_schema=SCHEMA)
    def produce() -> Any:
        """Produce the value."""
        return value

    return Agent(name="producer", tools=[produce], model=script.model())


def test_a_tool_with_an_output_schema_is_stored_as_the_json_the_sdk_sends(db_url: str) -> None:
    value = {"when": WHEN}
    sdk = _Script()
    AgentRunner().run_sync(_schema_agent(sdk, value), "go")
    expected = sdk.tool_output_seen()
    assert expected.startswith('{"when":"2026-12-01T14:30:00')  # the SDK's JSON, not str()

    rid = _unique("schema")
    live = _Script(fail_second=True)
    backend = DurableBackend(LocalEngine(db_url))
    with run_id(rid), pytest.raises(RuntimeError, match="the process died here"):
        backend.run_sync(_schema_agent(live, value), "go")
    assert live.tool_output_seen() == expected
    resumed = _Script()
    resumed.inputs.append(live.inputs[0])
    with run_id(rid):
        backend.run_sync(_schema_agent(resumed, object()), "go")  # replayed: never called
    assert resumed.tool_output_seen() == expected
    run_async(backend.engine.dispose())


def test_an_output_the_sdk_itself_refuses_fails_as_on_the_sdk_and_is_not_journaled(
    sqlite_backend: DurableBackend,
) -> None:
    """A schema'd tool returning no JSON object: the SDK raises its own error for it."""
    with pytest.raises(UserError) as sdk_error:
        AgentRunner().run_sync(_schema_agent(_Script(), WHEN), "go")
    rid = _unique("refused")
    with run_id(rid), pytest.raises(UserError) as durable_error:
        sqlite_backend.run_sync(_schema_agent(_Script(), WHEN), "go")
    assert str(durable_error.value) == str(sdk_error.value)
    journal = run_async(sqlite_backend.engine.read_journal(rid))
    assert [e.kind for e in journal] == ["model"]  # nothing stored for the refused output


def test_a_tool_use_function_is_given_the_object_so_an_unstorable_one_is_refused(
    sqlite_backend: DurableBackend,
) -> None:
    def decide(_ctx: Any, results: list[Any]) -> Any:
        return ToolsToFinalOutputResult(is_final_output=True, final_output=results[0].output)

    agent = _agent(_Script(), {"when": WHEN}, tool_use_behavior=decide)
    with run_id(_unique("decided")), pytest.raises(JournalSerializationError) as info:
        sqlite_backend.run_sync(agent, "go")
    assert "a function, which is given the tool's output itself" in str(info.value)
    assert info.value.path == 'result["when"]'
