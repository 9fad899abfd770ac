"""`remote()`: the agent and the model see the very tool; its settings are checked; outside a
durable run it runs in the calling process."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from agents import Agent, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import remote, remote_tools
from runplane_durable.runtime.intercept import tool_digest
from runplane_durable.runtime.remote_tools import remote_spec


def lookup(city: str, days: int = 1) -> str:
    """Look the weather up for a city."""
    return f"{city}: sunny for {days} day(s)"


def test_a_remote_tool_is_the_same_tool_to_the_agent_and_the_model() -> None:
    local = function_tool(lookup, name_override="lookup_weather")
    made = remote(local, queue="gpu", max_attempts=5, timeout=9.0, retry_delay=0.5)
    assert made is not local
    for field in ("name", "description", "params_json_schema", "strict_json_schema"):
        assert getattr(made, field) == getattr(local, field), field
    # What the model is asked does not change: a journal recorded with the tool local replays
    # with it remote, and back.
    assert tool_digest(made) == tool_digest(local)
    spec = remote_spec(made)
    assert spec is not None
    assert (spec.tool, spec.queue, spec.max_attempts, spec.timeout, spec.retry_delay) == (
        local,
        "gpu",
        5,
        9.0,
        0.5,
    )
    assert spec.send_context
    assert remote_spec(local) is None
    assert remote_tools("gpu")["lookup_weather"] is made
    # Made remote again, it wraps the tool as defined, with the new settings.
    moved = remote(made, queue="cpu")
    spec_moved = remote_spec(moved)
    assert spec_moved is not None
    assert (spec_moved.tool, spec_moved.queue) == (local, "cpu")


def test_the_decorator_takes_a_function_or_a_function_tool() -> None:
    @remote(queue="decorated")
    def forecast(city: str) -> str:
        """Forecast for a city."""
        return city

    @remote(queue="decorated", send_context=False)
    @function_tool(name_override="tides")
    def tide_table(port: str) -> str:
        """Tides at a port."""
        return port

    assert (forecast.name, forecast.description) == ("forecast", "Forecast for a city.")
    assert tide_table.name == "tides"
    spec = remote_spec(tide_table)
    assert spec is not None
    assert not spec.send_context
    assert set(remote_tools("decorated")) == {"forecast", "tides"}
    assert remote(lookup).name == "lookup"  # a bare function, on the default queue
    assert "lookup" in remote_tools()


@pytest.mark.parametrize(
    ("settings", "error", "says"),
    [
        ({"queue": ""}, ValueError, "a queue is a name of 1 to 200 characters"),
        ({"queue": "a\x00b"}, ValueError, "without NUL"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be a whole number of at least 1"),
        ({"max_attempts": True}, ValueError, "max_attempts"),
        ({"timeout": 0}, ValueError, "timeout must be a positive number of seconds or None"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"retry_delay": -1}, ValueError, "retry_delay must be 0 or more seconds"),
    ],
)
def test_settings_a_task_cannot_have_are_refused_when_the_tool_is_made(
    settings: dict[str, Any], error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        remote(lookup, **settings)


def test_only_a_tool_or_a_function_can_be_made_remote() -> None:
    with pytest.raises(
        TypeError, match="remote\\(\\) takes a function tool or a function, got int"
    ):
        remote(queue="x")(42)  # type: ignore[arg-type]


def test_a_second_different_tool_of_the_same_name_and_queue_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def twin(city: str) -> str:
        """One."""
        return city

    def other(city: str, country: str) -> str:
        """Two."""
        return city

    first = remote(twin, queue="twins")
    with caplog.at_level(logging.WARNING, logger="runplane_durable"):
        second = remote(function_tool(other, name_override="twin"), queue="twins")
    assert "remote tool 'twin' on queue 'twins' is defined twice, differently" in caplog.text
    assert remote_tools("twins")["twin"] is second is not first


def test_outside_a_durable_run_a_remote_tool_runs_in_the_calling_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tool = remote(function_tool(lookup, name_override="lookup_here"), queue="nowhere")
    model = ScriptedModel(
        [
            [function_call("lookup_here", {"city": "Oslo", "days": 2}, call_id="c1")],
            [assistant_message("ok")],
        ]
    )
    agent = Agent(name="plain", model=model, tools=[tool])
    with caplog.at_level(logging.WARNING, logger="runplane_durable"):
        result = Runner.run_sync(agent, "go")  # the SDK's own runner: no engine, no worker
    outputs = [getattr(i, "output", None) for i in result.new_items]
    assert "Oslo: sunny for 2 day(s)" in outputs
    assert "remote tool 'lookup_here' was called outside a durable run" in caplog.text
