"""The direct backend end to end over real HTTP, against a scripted OpenAI-compatible server.

Nothing here fakes the model layer: the openai client, its SSE parser and the SDK's Responses and
Chat Completions adapters all talk to a uvicorn server on 127.0.0.1, so what passes here is what
happens against a real compatible endpoint (Ollama, vLLM, LiteLLM, OpenAI itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import httpx2
import openai
import pytest
from agents import (
    Agent,
    MultiProvider,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    RunConfig,
    RunResult,
    SQLiteSession,
)
from agents.exceptions import UserError
from agents.run import AgentRunner
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from agents.testing import ScriptedModel, assistant_message
from openai.types.chat import ChatCompletionChunk
from runplane_openai import ChatCompletionsHistoryError, OpenAIBackend, OpenAISettings
from runplane_openai import Runner as OpenAIRunner
from runplane_openai.settings import ENV_API, ENV_API_KEY, ENV_BASE_URL
from support.endpoint_fixtures import clear_endpoint_settings
from support.openai_server import (
    ErrorReply,
    Reply,
    ScriptedOpenAIServer,
    Usage,
)
from support.weather import (
    ANSWER,
    API_KEY,
    CALL_ID,
    QUESTION,
    TOOL_OUTPUT,
    ApiName,
    assert_weather_round_trip,
    consume,
    messages,
    script_weather,
    tool_outputs,
    weather_agent,
)

import runplane
from runplane import RunnerBackend

# -- isolation ---------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_endpoint_settings(monkeypatch)


def _settings(server: ScriptedOpenAIServer, api: ApiName | None) -> OpenAISettings:
    return OpenAISettings(base_url=server.base_url, api_key=API_KEY, api=api)


def _set_env(monkeypatch: pytest.MonkeyPatch, server: ScriptedOpenAIServer, api: str) -> None:
    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_API_KEY, API_KEY)
    monkeypatch.setenv(ENV_API, api)


CONFIGURATIONS = ("settings", "env", "env-registry", "runplane_openai.Runner")


@pytest.fixture(params=CONFIGURATIONS)
def runner(
    request: pytest.FixtureRequest,
    server: ScriptedOpenAIServer,
    api: ApiName,
    monkeypatch: pytest.MonkeyPatch,
) -> RunnerBackend:
    """The direct backend pointed at `server`, configured each way a user can.

    The default registry keeps one backend instance per process, so env-based configurations
    construct theirs after the environment is set: `OpenAIBackend()` directly, or a fresh
    `Registry` that finds the backend through its real entry point. The import-line Runner uses
    the process-wide instance, whose settings are swapped for the test's.
    """
    how = request.param
    if how == "settings":
        return OpenAIBackend(_settings(server, api))
    if how == "runplane_openai.Runner":
        monkeypatch.setattr(OpenAIRunner.backend(), "settings", _settings(server, api))
        return OpenAIRunner  # its classmethods make the class itself a RunnerBackend
    _set_env(monkeypatch, server, api.upper().replace("_", "-"))  # as a user might spell it
    if how == "env":
        return OpenAIBackend()
    return runplane.runner("openai", registry=runplane.Registry())


# -- a tool round trip, each mode, each API, each way of configuring ------------------------------


@pytest.mark.anyio
async def test_run_calls_the_tool_then_answers(
    runner: RunnerBackend, server: ScriptedOpenAIServer, api: ApiName
) -> None:
    agent, calls = weather_agent()
    script_weather(server)
    result = await runner.run(agent, QUESTION)
    assert_weather_round_trip(server, api, result, calls, streamed=False)


def test_run_sync_calls_the_tool_then_answers(
    runner: RunnerBackend, server: ScriptedOpenAIServer, api: ApiName
) -> None:
    agent, calls = weather_agent()
    script_weather(server)
    result = runner.run_sync(agent, QUESTION)
    assert_weather_round_trip(server, api, result, calls, streamed=False)


@pytest.mark.anyio
async def test_run_streamed_calls_the_tool_then_answers(
    runner: RunnerBackend, server: ScriptedOpenAIServer, api: ApiName
) -> None:
    agent, calls = weather_agent()
    script_weather(server)
    result = runner.run_streamed(agent, QUESTION)
    events = await consume(result)

    assert result.is_complete
    assert_weather_round_trip(server, api, result, calls, streamed=True)
    raw = [e.data for e in events if isinstance(e, RawResponsesStreamEvent)]
    raw_types = {d.type for d in raw}
    assert {"response.function_call_arguments.delta", "response.completed"} <= raw_types
    text_deltas = [d.delta for d in raw if d.type == "response.output_text.delta"]
    assert len(text_deltas) > 1, "the answer should arrive in several deltas"
    assert "".join(text_deltas) == ANSWER
    items = [e.name for e in events if isinstance(e, RunItemStreamEvent)]
    assert items == ["tool_called", "tool_output", "message_output_created"]
    if api == "chat_completions":
        assert server.model_requests()[0].body["stream_options"] == {"include_usage": True}


def test_runplane_runner_by_name_is_the_import_line_runner() -> None:
    """`runplane.runner("openai")` and `from runplane_openai import Runner` are one backend."""
    assert runplane.runner("openai") is OpenAIRunner
    assert isinstance(OpenAIRunner.backend(), OpenAIBackend)


def test_base_url_alone_uses_the_sdk_default_api(server: ScriptedOpenAIServer) -> None:
    """Without RUNPLANE_OPENAI_API the SDK's default (Responses) is used, not guessed."""
    backend = OpenAIBackend(OpenAISettings(base_url=server.base_url, api_key=API_KEY))
    server.enqueue(Reply.message("hi"))
    assert backend.run_sync(Agent(name="a", model="gpt-test"), "hello").final_output == "hi"
    assert [r.api for r in server.model_requests()] == ["responses"]


# -- the API key -------------------------------------------------------------------------------


def test_runplane_key_wins_over_openai_api_key(
    server: ScriptedOpenAIServer, api: ApiName, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_env(monkeypatch, server, api)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-real-openai-key")
    server.enqueue(Reply.message("hi"))
    OpenAIBackend().run_sync(Agent(name="a", model="gpt-test"), "hello")
    assert [r.bearer for r in server.model_requests()] == [API_KEY]


def test_without_runplane_key_the_sdk_default_key_is_used(
    server: ScriptedOpenAIServer, api: ApiName, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_API, api)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    server.enqueue(Reply.message("hi"))
    assert OpenAIBackend().run_sync(Agent(name="a", model="gpt-test"), "x").final_output == "hi"
    assert [r.bearer for r in server.model_requests()] == [API_KEY]


def test_keyless_local_endpoint_works_with_only_a_base_url(
    api: ApiName, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp, Ollama and vLLM usually take no key; a base URL alone must be enough."""
    with ScriptedOpenAIServer(api_key=None) as keyless:
        monkeypatch.setenv(ENV_BASE_URL, keyless.base_url)
        monkeypatch.setenv(ENV_API, api)
        keyless.enqueue(Reply.message("no key needed"))
        result = OpenAIBackend().run_sync(Agent(name="a", model="local-model"), "hello")
        assert result.final_output == "no key needed"
        assert [r.bearer for r in keyless.model_requests()] == ["runplane-no-key"]


def test_wrong_key_is_refused_by_the_endpoint(server: ScriptedOpenAIServer, api: ApiName) -> None:
    backend = OpenAIBackend(OpenAISettings(base_url=server.base_url, api_key="sk-wrong", api=api))
    server.enqueue(Reply.message("never sent"))
    with pytest.raises(openai.AuthenticationError):
        backend.run_sync(Agent(name="a", model="gpt-test"), "hello")
    assert [r.bearer for r in server.model_requests()] == ["sk-wrong"]
    assert server.pending == 1


# -- conversation history ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["run", "run_sync"])
def test_chat_completions_session_keeps_earlier_turns(
    server: ScriptedOpenAIServer, mode: str
) -> None:
    """The supported way to carry history on Chat Completions: a session, resent every turn.

    Two run_sync calls in one test also pin the run_sync loop: each call must reuse the loop
    (and the pooled connection) the previous one used.
    """
    backend = OpenAIBackend(_settings(server, "chat_completions"))
    agent = Agent(name="a", instructions="Be brief.", model="gpt-test")
    session = SQLiteSession("conversation")
    server.enqueue(Reply.message("Nice to meet you, Ada."), Reply.message("You are Ada."))

    if mode == "run_sync":
        backend.run_sync(agent, "My name is Ada.", session=session)
        second = backend.run_sync(agent, "What is my name?", session=session)
    else:

        async def both() -> RunResult:
            await backend.run(agent, "My name is Ada.", session=session)
            return await backend.run(agent, "What is my name?", session=session)

        second = asyncio.run(both())

    assert second.final_output == "You are Ada."
    first_request, second_request = server.model_requests("chat_completions")
    assert messages(first_request) == [("system", "Be brief."), ("user", "My name is Ada.")]
    assert messages(second_request) == [
        ("system", "Be brief."),
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]


def test_run_sync_twice_in_one_process(server: ScriptedOpenAIServer, api: ApiName) -> None:
    """Regression: run_sync used `asyncio.run`, closing the loop the SDK's pooled connection was
    bound to, so the second call failed with "Event loop is closed"."""
    backend = OpenAIBackend(_settings(server, api))
    agent = Agent(name="a", model="gpt-test")
    server.enqueue(Reply.message("one"), Reply.message("two"))
    assert backend.run_sync(agent, "1").final_output == "one"
    assert backend.run_sync(agent, "2").final_output == "two"


@pytest.mark.anyio
async def test_run_sync_inside_a_running_loop_fails_as_the_sdk_does(
    server: ScriptedOpenAIServer,
) -> None:
    """The SDK's own error, not one from closing the provider on a loop that is running."""
    backend = OpenAIBackend(_settings(server, "chat_completions"))
    sdk_error = r"run_sync\(\) cannot be called when an event loop is already running"
    with pytest.raises(RuntimeError, match=sdk_error):
        backend.run_sync(Agent(name="a", model="gpt-test"), "hi")
    assert server.requests == []


HISTORY_ARGS: list[dict[str, Any]] = [
    {"previous_response_id": "resp_earlier"},
    {"auto_previous_response_id": True},
    {"conversation_id": "conv_earlier"},
]


def _chat_model(server: ScriptedOpenAIServer) -> OpenAIChatCompletionsModel:
    # No pooled connections: this client runs on the SDK's run_sync loop, and a connection kept
    # alive there would be closed when the client is garbage-collected, by openai's finalizer, on
    # whatever loop runs then (a later test's): "Event loop is closed" in that test.
    http = openai.DefaultAsyncHttpxClient(limits=httpx2.Limits(max_keepalive_connections=0))
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, http_client=http)
    return OpenAIChatCompletionsModel(model="gpt-test", openai_client=client)


def _start(backend: OpenAIBackend, mode: str, agent: Agent[Any], kwargs: dict[str, Any]) -> None:
    if mode == "run":
        asyncio.run(backend.run(agent, "hello", **kwargs))
    elif mode == "run_sync":
        backend.run_sync(agent, "hello", **kwargs)
    else:
        backend.run_streamed(agent, "hello", **kwargs)  # refused before any loop is needed


@pytest.mark.parametrize("kwargs", HISTORY_ARGS, ids=lambda k: next(iter(k)))
@pytest.mark.parametrize("mode", ["run", "run_sync", "run_streamed"])
def test_server_side_history_is_refused_on_chat_completions(
    server: ScriptedOpenAIServer, mode: str, kwargs: dict[str, Any]
) -> None:
    """Chat Completions has no server-side state: refuse instead of silently dropping turns."""
    backend = OpenAIBackend(_settings(server, "chat_completions"))
    agent = Agent[Any](name="a", model="gpt-test")
    server.enqueue(Reply.message("must not be asked"))

    with pytest.raises(ChatCompletionsHistoryError) as caught:
        _start(backend, mode, agent, kwargs)

    assert isinstance(caught.value, UserError)
    message = str(caught.value)
    assert next(iter(kwargs)) in message
    assert "session=SQLiteSession" in message
    assert server.requests == []


def test_an_agents_own_chat_model_follows_the_sdks_policy(server: ScriptedOpenAIServer) -> None:
    """The direct backend is the reference: where the agent brings its own Chat Completions
    model, the SDK's own handling of previous_response_id applies, not ours."""
    agent = Agent(name="a", model=_chat_model(server))

    def outcome(run: Any) -> tuple[str, Any]:
        server.enqueue(Reply.message("answered"))
        try:
            return ("ok", run(agent, "hi", previous_response_id="resp_1").final_output)
        except Exception as exc:
            return (type(exc).__name__, str(exc))

    sdk = outcome(lambda *a, **k: AgentRunner().run_sync(*a, **k))
    ours = outcome(OpenAIBackend(OpenAISettings()).run_sync)
    assert ours == sdk


@pytest.mark.anyio
async def test_previous_response_id_reaches_the_responses_api(
    server: ScriptedOpenAIServer,
) -> None:
    backend = OpenAIBackend(_settings(server, "responses"))
    agent = Agent(name="a", model="gpt-test")
    server.enqueue(Reply.message("Nice to meet you, Ada."), Reply.message("You are Ada."))

    first = await backend.run(agent, "My name is Ada.")
    second = await backend.run(
        agent, "What is my name?", previous_response_id=first.last_response_id
    )

    assert first.last_response_id is not None
    assert second.final_output == "You are Ada."
    first_request, second_request = server.model_requests("responses")
    assert "previous_response_id" not in first_request.body
    assert second_request.body["previous_response_id"] == first.last_response_id
    # With server-side state the client sends only the new turn.
    assert messages(second_request) == [("user", "What is my name?")]


@pytest.mark.anyio
async def test_auto_previous_response_id_chains_the_turns_of_a_run(
    server: ScriptedOpenAIServer,
) -> None:
    backend = OpenAIBackend(_settings(server, "responses"))
    agent, calls = weather_agent()
    script_weather(server)

    result = await backend.run(agent, QUESTION, auto_previous_response_id=True)

    assert result.final_output == ANSWER
    assert calls == [{"city": "Lisbon", "unit": "C"}]
    first_request, second_request = server.model_requests("responses")
    assert "previous_response_id" not in first_request.body
    assert second_request.body["previous_response_id"] == result.raw_responses[0].response_id
    assert tool_outputs(second_request) == {CALL_ID: TOOL_OUTPUT}


# -- whose provider --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _other_server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as s:
        yield s


@pytest.fixture
def other_server(_other_server: ScriptedOpenAIServer) -> ScriptedOpenAIServer:
    """A second endpoint, with no key check, standing for one the caller chose."""
    _other_server.reset()
    return _other_server


def _provider_for(server: ScriptedOpenAIServer) -> OpenAIProvider:
    return OpenAIProvider(base_url=server.base_url, api_key="sk-other", use_responses=False)


@pytest.mark.parametrize(
    "make_config",
    [
        lambda p: RunConfig(model_provider=p),
        lambda p: {"model_provider": p, "workflow_name": "mine"},
    ],
    ids=["RunConfig", "dict"],
)
def test_a_callers_model_provider_is_respected(
    server: ScriptedOpenAIServer,
    other_server: ScriptedOpenAIServer,
    make_config: Callable[[OpenAIProvider], RunConfig | dict[str, Any]],
) -> None:
    backend = OpenAIBackend(_settings(server, "responses"))
    other_server.enqueue(Reply.message("from the caller's endpoint"))

    result = backend.run_sync(
        Agent(name="a", model="gpt-test"), "hi", run_config=make_config(_provider_for(other_server))
    )

    assert result.final_output == "from the caller's endpoint"
    assert server.requests == []
    assert [(r.api, r.bearer) for r in other_server.model_requests()] == [
        ("chat_completions", "sk-other")
    ]


@pytest.mark.parametrize(
    "run_config",
    [None, RunConfig(workflow_name="mine"), {"workflow_name": "mine"}],
    ids=["none", "RunConfig-without-provider", "dict-without-provider"],
)
def test_a_run_config_without_a_provider_goes_to_the_configured_endpoint(
    server: ScriptedOpenAIServer, run_config: RunConfig | dict[str, Any] | None
) -> None:
    backend = OpenAIBackend(_settings(server, "chat_completions"))
    server.enqueue(Reply.message("configured"))
    result = backend.run_sync(Agent(name="a", model="gpt-test"), "hi", run_config=run_config)
    assert result.final_output == "configured"
    assert [r.api for r in server.model_requests()] == ["chat_completions"]


@pytest.fixture
def provider_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, MultiProvider]]:
    """Every provider the backend builds, and every close of one, in order."""
    log: list[tuple[str, MultiProvider]] = []
    build = OpenAISettings.provider

    def spy(settings: OpenAISettings) -> MultiProvider:
        provider = build(settings)
        close = provider.aclose

        async def aclose() -> None:
            log.append(("closed", provider))
            await close()

        provider.aclose = aclose  # type: ignore[method-assign]
        log.append(("built", provider))
        return provider

    monkeypatch.setattr(OpenAISettings, "provider", spy)
    return log


@pytest.mark.parametrize("mode", ["run", "run_sync", "run_streamed"])
def test_each_run_gets_its_own_provider_and_closes_it(
    server: ScriptedOpenAIServer,
    api: ApiName,
    mode: str,
    provider_log: list[tuple[str, MultiProvider]],
) -> None:
    backend = OpenAIBackend(_settings(server, api))
    agent = Agent(name="a", model="gpt-test")
    server.enqueue(Reply.message("one"), Reply.message("two"))

    async def streamed(text: str) -> None:
        await consume(backend.run_streamed(agent, text))
        for _ in range(100):  # closing is scheduled when the run's task ends
            if len(provider_log) % 2 == 0:
                return
            await asyncio.sleep(0.01)

    async def both() -> None:
        for text in ("1", "2"):
            if mode == "run":
                await backend.run(agent, text)
            else:
                await streamed(text)

    if mode == "run_sync":
        backend.run_sync(agent, "1")
        backend.run_sync(agent, "2")
    else:
        asyncio.run(both())

    built = [p for what, p in provider_log if what == "built"]
    assert [what for what, _ in provider_log] == ["built", "closed", "built", "closed"]
    assert built[0] is not built[1]
    assert [p for what, p in provider_log if what == "closed"] == built


def test_an_unconfigured_backend_leaves_the_provider_to_the_sdk(
    provider_log: list[tuple[str, MultiProvider]],
) -> None:
    agent = Agent(name="a", model=ScriptedModel([[assistant_message("offline")]]))
    assert OpenAIBackend(OpenAISettings()).run_sync(agent, "hi").final_output == "offline"
    assert provider_log == []


# -- errors from the endpoint ---------------------------------------------------------------------


def test_endpoint_errors_surface_as_openai_errors(
    server: ScriptedOpenAIServer, api: ApiName
) -> None:
    backend = OpenAIBackend(_settings(server, api))
    server.enqueue(ErrorReply(400, "context too long", code="context_length_exceeded"))
    with pytest.raises(openai.BadRequestError, match="context too long"):
        backend.run_sync(Agent(name="a", model="gpt-test"), "hi")


# -- the scripted server itself -----------------------------------------------------------------


def test_server_answers_health_and_models_and_checks_the_key(server: ScriptedOpenAIServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/health").json() == {"status": "ok"}
        refused = http.get("/v1/models", headers={"Authorization": "Bearer sk-nope"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert http.get("/v1/models").status_code == 401
        listed = http.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["data"]] == ["gpt-test"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
def test_server_says_when_no_reply_was_scripted(server: ScriptedOpenAIServer, path: str) -> None:
    with httpx.Client(base_url=server.url) as http:
        response = http.post(
            path,
            json={"model": "gpt-test", "messages": [], "input": []},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    assert "No reply was scripted" in response.json()["error"]["message"]
    assert [r.path for r in server.requests] == [path]


def test_unscripted_model_call_fails_the_run_at_once(server: ScriptedOpenAIServer) -> None:
    backend = OpenAIBackend(_settings(server, "chat_completions"))
    with pytest.raises(openai.InternalServerError, match="No reply was scripted"):
        backend.run_sync(Agent(name="a", model="gpt-test"), "hi")
    assert len(server.model_requests()) == 1  # not retried


def test_server_streams_chat_chunks_the_way_openai_does(server: ScriptedOpenAIServer) -> None:
    """Raw wire check, independent of the SDK: pieces, one finish chunk, usage, then [DONE]."""
    server.enqueue(Reply.message("Hello there", usage=Usage(3, 2)))
    with (
        httpx.Client(base_url=server.url) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "m", "stream": True, "stream_options": {"include_usage": True}},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1]]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.total_tokens == 5
