"""RUNPLANE_OPENAI_* point every backend's runs at the configured endpoint, over real HTTP.

The one-line swap must hold for OpenAI-compatible endpoints: the same program, with the same
environment, answers the same on the direct backend, the durable one and a third party's
(tests/third_party_backend), in both API flavours and all three entry points.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import agents.models.openai_provider as sdk_openai_provider
import pytest
from agents import RunConfig
from runplane_openai.settings import ENV_API, ENV_API_KEY, ENV_BASE_URL
from support.durable import sqlite_url
from support.endpoint_fixtures import clear_endpoint_settings
from support.openai_server import ScriptedOpenAIServer
from support.weather import (
    ANSWER,
    API_KEY,
    QUESTION,
    ApiName,
    assert_weather_round_trip,
    consume,
    script_weather,
    weather_agent,
)

import runplane
from runplane import BackendRunner
from runplane.endpoint import SettingsError as CoreSettingsError

THIRD_PARTY_SRC = Path(__file__).parents[1] / "third_party_backend" / "src"
BACKENDS = ("openai", "durable", "deadline")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_endpoint_settings(monkeypatch)
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", sqlite_url(tmp_path))


def _registry(monkeypatch: pytest.MonkeyPatch) -> runplane.Registry:
    """A fresh registry (backends constructed after the environment is set), plus the third
    party's backend, registered from its source tree as an application would."""
    monkeypatch.syspath_prepend(str(THIRD_PARTY_SRC))
    import runplane_deadline.plugin  # type: ignore[import-not-found]

    registry = runplane.Registry()
    registry.register(runplane_deadline.plugin, name="runplane-deadline")
    return registry


@pytest.fixture(params=BACKENDS)
def runner(
    request: pytest.FixtureRequest,
    server: ScriptedOpenAIServer,
    api: ApiName,
    monkeypatch: pytest.MonkeyPatch,
) -> type[BackendRunner]:
    """`runplane.runner(name)` with nothing but the environment pointing at `server`."""
    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_API_KEY, API_KEY)
    monkeypatch.setenv(ENV_API, api)
    return runplane.runner(request.param, registry=_registry(monkeypatch))


@pytest.mark.anyio
async def test_run_reaches_the_configured_endpoint_on_every_backend(
    runner: type[BackendRunner], server: ScriptedOpenAIServer, api: ApiName
) -> None:
    agent, calls = weather_agent()
    script_weather(server)
    result = await runner.run(agent, QUESTION)
    assert_weather_round_trip(server, api, result, calls, streamed=False)


def test_run_sync_reaches_the_configured_endpoint_on_every_backend(
    runner: type[BackendRunner], server: ScriptedOpenAIServer, api: ApiName
) -> None:
    for _ in range(2):  # twice: the provider closed after the first must not break the second
        server.reset()
        agent, calls = weather_agent()
        script_weather(server)
        result = runner.run_sync(agent, QUESTION)
        assert_weather_round_trip(server, api, result, calls, streamed=False)


@pytest.mark.anyio
async def test_run_streamed_reaches_the_configured_endpoint_on_every_backend(
    runner: type[BackendRunner], server: ScriptedOpenAIServer, api: ApiName
) -> None:
    agent, calls = weather_agent()
    script_weather(server)
    result = runner.run_streamed(agent, QUESTION)
    await consume(result)
    assert_weather_round_trip(server, api, result, calls, streamed=True)


def test_the_sdk_client_of_a_test_keeps_no_connection_open_after_its_run(
    runner: type[BackendRunner], server: ScriptedOpenAIServer
) -> None:
    """As the fixtures give it (`fresh_sdk_http_client`): a connection kept in its pool would
    outlive this test's event loop unclosed, and its ResourceWarning land in a later test."""
    agent, _ = weather_agent()
    script_weather(server)
    runner.run_sync(agent, QUESTION)
    deadline = time.monotonic() + 2  # well within the server's own keep-alive timeout (5 s)
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.open_connections == 0


def test_a_provider_the_caller_chose_is_left_alone(
    runner: type[BackendRunner], server: ScriptedOpenAIServer
) -> None:
    chosen = _RefusingProvider()
    agent, _ = weather_agent()
    with pytest.raises(RuntimeError, match="the caller's provider"):
        runner.run_sync(agent, QUESTION, run_config=RunConfig(model_provider=chosen))
    assert server.model_requests() == []


class _RefusingProvider(sdk_openai_provider.OpenAIProvider):
    def get_model(self, model_name: str | None) -> Any:
        raise RuntimeError("the caller's provider was asked")


def test_a_finished_durable_run_replays_without_fingerprinting_the_provider(
    server: ScriptedOpenAIServer, api: ApiName, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runplane_durable import run_id

    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_API_KEY, API_KEY)
    monkeypatch.setenv(ENV_API, api)
    Runner = runplane.runner("durable", registry=_registry(monkeypatch))
    agent, calls = weather_agent()
    script_weather(server)
    with run_id("endpoint-1"):
        first = Runner.run_sync(agent, QUESTION)
    with run_id("endpoint-1"):  # a new provider object: the same run, from the journal
        again = Runner.run_sync(agent, QUESTION)
    assert first.final_output == again.final_output == ANSWER
    assert len(server.model_requests()) == 2  # none repeated
    assert calls == [{"city": "Lisbon", "unit": "C"}]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (ENV_API, "bogus", "'responses'"),
        (ENV_BASE_URL, "127.0.0.1:8080", "http(s) URL"),
    ],
)
def test_a_bad_setting_raises_settings_error_on_every_backend(
    backend: str,
    variable: str,
    value: str,
    says: str,
    server: ScriptedOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runplane_openai import SettingsError

    monkeypatch.setenv(variable, value)
    registry = _registry(monkeypatch)
    agent, calls = weather_agent()
    with pytest.raises(SettingsError) as caught:
        runplane.runner(backend, registry=registry).run_sync(agent, QUESTION)
    assert f"{variable}={value!r}" in str(caught.value)
    assert says in str(caught.value)
    assert "chat_completions" in str(caught.value) or variable == ENV_BASE_URL
    assert isinstance(caught.value, runplane.RunplaneError)  # the CLI reports it in one line
    assert CoreSettingsError is SettingsError  # one type, owned by core
    assert calls == []
    assert server.model_requests() == []


def test_the_settings_error_names_every_valid_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_API, "bogus")
    with pytest.raises(CoreSettingsError) as caught:
        runplane.runner("durable", registry=_registry(monkeypatch)).run_sync(
            weather_agent()[0], QUESTION
        )
    assert "RUNPLANE_OPENAI_API='bogus'" in str(caught.value)
    assert "'responses'" in str(caught.value)
    assert "'chat_completions'" in str(caught.value)


@pytest.mark.parametrize("backend", ["openai", "durable"])
def test_unchanged_agents_runner_calls_under_install_reach_the_endpoint(
    backend: str, server: ScriptedOpenAIServer, api: ApiName, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents

    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_API_KEY, API_KEY)
    monkeypatch.setenv(ENV_API, api)
    agent, calls = weather_agent()
    script_weather(server)
    with runplane.install(backend, registry=_registry(monkeypatch)):
        result = agents.Runner.run_sync(agent, QUESTION)
    assert_weather_round_trip(server, api, result, calls, streamed=False)


def test_a_bad_setting_is_a_settings_error_even_when_the_backend_is_built_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The direct backend reads the settings when it is built: its factory's own runplane error
    reaches the caller as itself, not wrapped in a BackendFactoryError."""
    monkeypatch.setenv(ENV_API, "bogus")
    with pytest.raises(CoreSettingsError, match="RUNPLANE_OPENAI_API='bogus'"):
        runplane.Registry().get("openai")


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_side_history_on_chat_completions_is_refused_on_every_backend(
    backend: str, server: ScriptedOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runplane_openai import ChatCompletionsHistoryError

    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_API_KEY, API_KEY)
    monkeypatch.setenv(ENV_API, "chat_completions")
    agent, calls = weather_agent()
    Runner = runplane.runner(backend, registry=_registry(monkeypatch))
    with pytest.raises(ChatCompletionsHistoryError, match="previous_response_id"):
        Runner.run_sync(agent, QUESTION, previous_response_id="resp_1")
    assert calls == []
    assert server.model_requests() == []
