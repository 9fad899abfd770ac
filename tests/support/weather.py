"""The weather round trip over real HTTP: an agent with one function tool, a scripted server that
asks for it and then answers, and the checks of every request the client sent.

tests/openai/test_openai_backend_http.py runs it on the direct backend and
tests/core/test_endpoint_every_backend.py on every backend, so both check the same round trip.
"""

from __future__ import annotations

from typing import Any, Literal

from agents import Agent, ModelSettings, RunResult, RunResultStreaming, function_tool
from agents.stream_events import StreamEvent

from support.openai_server import RecordedRequest, Reply, ScriptedOpenAIServer, Usage

ApiName = Literal["chat_completions", "responses"]
APIS: tuple[ApiName, ...] = ("chat_completions", "responses")
API_KEY = "sk-runplane-http-test"
QUESTION = "What's the weather in Lisbon?"
ANSWER = "It is 18 degrees and sunny in Lisbon."
TOOL_OUTPUT = "18 degrees C in Lisbon"
CALL_ID = "call_weather_1"
FIRST_USAGE = Usage(input_tokens=11, output_tokens=7)
SECOND_USAGE = Usage(input_tokens=23, output_tokens=9)


def weather_agent() -> tuple[Agent[Any], list[dict[str, str]]]:
    """An agent whose only way to answer is a real function tool; returns the tool's call log."""
    calls: list[dict[str, str]] = []

    @function_tool
    def get_weather(city: str, unit: str) -> str:
        """Current weather for a city."""
        calls.append({"city": city, "unit": unit})
        return f"18 degrees {unit} in {city}"

    agent = Agent(
        name="forecaster",
        instructions="Answer weather questions with the get_weather tool.",
        model="gpt-test",
        tools=[get_weather],
        # Compatible endpoints only stream usage when asked; asking lets every mode check it.
        model_settings=ModelSettings(include_usage=True),
    )
    return agent, calls


def script_weather(server: ScriptedOpenAIServer) -> None:
    server.enqueue(
        Reply.tool(
            "get_weather", {"city": "Lisbon", "unit": "C"}, call_id=CALL_ID, usage=FIRST_USAGE
        ),
        Reply.message(ANSWER, usage=SECOND_USAGE),
    )


def _text(content: Any) -> str:
    """Text of a message's content, whether a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def messages(request: RecordedRequest) -> list[tuple[str, str]]:
    """(role, text) of every conversational message the client sent, in either API."""
    body = request.body
    if request.api == "chat_completions":
        return [(m["role"], _text(m.get("content"))) for m in body["messages"]]
    items = body["input"]
    if isinstance(items, str):
        return [("user", items)]
    return [(i["role"], _text(i.get("content"))) for i in items if "role" in i]


def tool_outputs(request: RecordedRequest) -> dict[str, str]:
    """Tool results the client sent back, by call id."""
    body = request.body
    if request.api == "chat_completions":
        return {
            m["tool_call_id"]: _text(m["content"]) for m in body["messages"] if m["role"] == "tool"
        }
    return {
        i["call_id"]: _text(i["output"])
        for i in body["input"]
        if isinstance(i, dict) and i.get("type") == "function_call_output"
    }


def assert_weather_round_trip(
    server: ScriptedOpenAIServer,
    api: ApiName,
    result: RunResult | RunResultStreaming,
    calls: list[dict[str, str]],
    *,
    streamed: bool,
) -> None:
    assert calls == [{"city": "Lisbon", "unit": "C"}]
    assert result.final_output == ANSWER
    assert server.pending == 0
    first, second = server.model_requests()  # exactly two model calls
    for request in (first, second):
        assert request.api == api
        assert request.streamed is streamed
        assert request.bearer == API_KEY
        assert request.tool_names() == ["get_weather"]
    assert ("user", QUESTION) in messages(first)
    # The second call carries the earlier turn and the tool's output for the model's call id.
    assert ("user", QUESTION) in messages(second)
    assert tool_outputs(second) == {CALL_ID: TOOL_OUTPUT}
    usage = result.context_wrapper.usage
    assert usage.requests == 2
    assert usage.input_tokens == FIRST_USAGE.input_tokens + SECOND_USAGE.input_tokens
    assert usage.output_tokens == FIRST_USAGE.output_tokens + SECOND_USAGE.output_tokens


async def consume(result: RunResultStreaming) -> list[StreamEvent]:
    return [event async for event in result.stream_events()]
