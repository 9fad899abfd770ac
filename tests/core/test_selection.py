"""The three ways of choosing a backend, and that they share one mechanism."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import agents
import pytest
from agents import Agent, function_tool
from agents.run import AgentRunner, get_default_agent_runner
from agents.testing import ScriptedModel, assistant_message, function_call
from support.backends import BackendPlugin, RecordingBackend

import runplane


@pytest.fixture
def recording() -> Iterator[RecordingBackend]:
    backend = RecordingBackend()
    name = runplane.register_plugin(BackendPlugin({"rec": lambda: backend}), name="test-rec")
    yield backend
    runplane.uninstall()
    runplane.default_registry().unregister(name)


def _agent(*replies: str) -> Agent[Any]:
    return Agent(name="echo", model=ScriptedModel([[assistant_message(r)] for r in replies]))


def test_runner_by_name_runs_on_that_backend(recording: RecordingBackend) -> None:
    Runner = runplane.runner("rec")
    assert Runner.run_sync(_agent("hi"), "x").final_output == "hi"
    assert asyncio.run(Runner.run(_agent("yo"), "x")).final_output == "yo"
    assert [c[0] for c in recording.calls] == ["run_sync", "run"]
    assert runplane.runner("rec") is Runner  # one class per name


def test_runner_passes_every_argument_through(recording: RecordingBackend) -> None:
    context = {"user": 1}
    runplane.runner("rec").run_sync(_agent("hi"), "x", context=context, max_turns=3)
    kwargs = recording.calls[0][2]
    assert kwargs["context"] is context
    assert kwargs["max_turns"] == 3
    assert set(kwargs) == {
        "context",
        "max_turns",
        "hooks",
        "run_config",
        "error_handlers",
        "previous_response_id",
        "auto_previous_response_id",
        "conversation_id",
        "session",
    }


def test_unknown_name_fails_at_selection_time() -> None:
    with pytest.raises(runplane.UnknownBackendError, match="openai \\(from runplane-openai\\)"):
        runplane.runner("no-such-backend")


def test_env_runner_reads_the_variable_at_call_time(
    recording: RecordingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runplane import Runner

    monkeypatch.delenv("RUNPLANE_BACKEND", raising=False)
    assert Runner.selected_backend() == "openai"
    Runner.run_sync(_agent("a"), "x")
    assert recording.calls == []
    monkeypatch.setenv("RUNPLANE_BACKEND", "rec")
    Runner.run_sync(_agent("b"), "x")
    assert [c[0] for c in recording.calls] == ["run_sync"]
    monkeypatch.setenv("RUNPLANE_BACKEND", "missing")
    with pytest.raises(runplane.UnknownBackendError):
        Runner.run_sync(_agent("c"), "x")


def test_unknown_name_from_the_environment_says_it_came_from_runplane_backend(
    recording: RecordingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runplane import Runner

    monkeypatch.setenv("RUNPLANE_BACKEND", "nosuch")
    with pytest.raises(runplane.UnknownBackendError) as info:
        Runner.run_sync(_agent("c"), "x")
    message = str(info.value)
    assert "from the RUNPLANE_BACKEND environment variable: RUNPLANE_BACKEND='nosuch'" in message
    assert info.value.source is not None
    # A name written in code says nothing about the variable.
    with pytest.raises(runplane.UnknownBackendError) as from_code:
        runplane.runner("nosuch")
    assert "RUNPLANE_BACKEND" not in str(from_code.value)


def test_runplane_backend_with_surrounding_spaces_selects_the_backend(
    recording: RecordingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runplane import Runner

    monkeypatch.setenv("RUNPLANE_BACKEND", "  rec \n")
    assert Runner.selected_backend() == "rec"
    Runner.run_sync(_agent("b"), "x")
    assert [c[0] for c in recording.calls] == ["run_sync"]
    monkeypatch.setenv("RUNPLANE_BACKEND", "   ")  # blank is unset: the default backend
    assert Runner.selected_backend() == "openai"


@pytest.mark.parametrize(
    ("given", "meant"), [("REC", "rec"), ("Durable", "durable"), ("durabel", "durable")]
)
def test_runplane_backend_in_another_case_or_misspelled_suggests_the_installed_name(
    recording: RecordingBackend, monkeypatch: pytest.MonkeyPatch, given: str, meant: str
) -> None:
    from runplane import Runner

    monkeypatch.setenv("RUNPLANE_BACKEND", given)
    with pytest.raises(runplane.UnknownBackendError) as info:
        Runner.run_sync(_agent("c"), "x")
    message = str(info.value)
    assert f"RUNPLANE_BACKEND={given!r}" in message
    assert f"Did you mean {meant!r}? Backend names are case-sensitive." in message
    assert recording.calls == []


def test_install_routes_unchanged_agents_runner_calls(recording: RecordingBackend) -> None:
    sdk_default = get_default_agent_runner()
    with runplane.install("rec") as installation:
        assert installation.name == "rec"
        assert runplane.installed() == "rec"
        assert agents.Runner.run_sync(_agent("hi"), "x").final_output == "hi"

        async def stream() -> Any:
            result = agents.Runner.run_streamed(_agent("s"), "x")
            async for _ in result.stream_events():
                pass
            return result.final_output

        assert asyncio.run(stream()) == "s"
        assert runplane.sdk_runner() is sdk_default
    assert [c[0] for c in recording.calls] == ["run_sync", "run_streamed"]
    assert runplane.installed() is None
    assert get_default_agent_runner() is sdk_default


def test_install_twice_never_chains_forwarders(recording: RecordingBackend) -> None:
    sdk_default = get_default_agent_runner()
    runplane.install("rec")
    runplane.install("openai")
    assert runplane.installed() == "openai"
    assert runplane.sdk_runner() is sdk_default
    runplane.uninstall()
    assert get_default_agent_runner() is sdk_default
    runplane.uninstall()  # a no-op when nothing is installed
    assert isinstance(get_default_agent_runner(), AgentRunner)


def test_install_reaches_nested_agent_as_tool_runs(recording: RecordingBackend) -> None:
    inner = Agent(name="inner", model=ScriptedModel([[assistant_message("inner says hi")]]))
    outer = Agent(
        name="outer",
        tools=[inner.as_tool(tool_name="ask_inner", tool_description="Ask the inner agent.")],
        model=ScriptedModel(
            [
                [function_call("ask_inner", {"input": "hello"}, call_id="c1")],
                [assistant_message("done")],
            ]
        ),
    )
    with runplane.install("rec"):
        result = agents.Runner.run_sync(outer, "go")
    assert result.final_output == "done"
    assert [(c[0], c[1]) for c in recording.calls] == [("run_sync", "outer"), ("run", "inner")]


def test_direct_backend_under_install_does_not_forward_to_itself() -> None:
    @function_tool
    def add(a: int, b: int) -> int:
        return a + b

    agent = Agent(
        name="calc",
        tools=[add],
        model=ScriptedModel(
            [[function_call("add", {"a": 2, "b": 3}, call_id="c1")], [assistant_message("5")]]
        ),
    )
    with runplane.install("openai"):
        assert agents.Runner.run_sync(agent, "2+3?").final_output == "5"


def test_sync_driver_runs_a_backends_async_run_on_the_sdks_run_sync_machinery() -> None:
    """Twice in a row: asyncio.run would close the default loop and break the second call."""
    seen: list[str] = []

    async def run(agent: Agent[Any], input: Any, **kwargs: Any) -> Any:
        seen.append(input)
        return await runplane.sdk_runner().run(agent, input, **kwargs)

    driver = runplane.SyncDriver(run)
    assert driver.run_sync(_agent("one"), "first").final_output == "one"
    assert driver.run_sync(_agent("two"), "second").final_output == "two"
    assert seen == ["first", "second"]
