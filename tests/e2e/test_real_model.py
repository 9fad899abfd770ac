"""End to end against a real model: llama.cpp serving Qwen2.5-Coder-0.5B on 127.0.0.1.

Both backends, over Chat Completions and the Responses API, through `run`, `run_sync` and
`run_streamed`: the model must really call the one tool, the tool must really run, and a final
answer must come back. Then multi-turn memory through a session, and a durable run killed -9
mid-tool and resumed in a fresh process without the model being asked again.

The assertions suit a 0.5B model at temperature 0: the tool's name exactly, its argument loosely
(case-insensitive substring), the answer only as non-empty text. They prove the wire path,
streaming, durability and replay, never answer quality."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, ModelSettings, SQLiteSession, function_tool
from agents.items import ToolCallItem, ToolCallOutputItem
from agents.models.interface import Model
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from agents.result import RunResult, RunResultStreaming
from agents.stream_events import StreamEvent
from openai import AsyncOpenAI
from runplane_durable import DurableBackend, LocalEngine, run_id
from runplane_localmodel import LocalModelServer
from runplane_openai import OpenAIBackend, OpenAISettings
from support.real_model_program import PROMPT as ORDER_PROMPT
from support.real_model_program import STATUS as ORDER_STATUS
from support.recording_proxy import RecordingProxy
from typer.testing import CliRunner

from runplane.cli import build_app

pytestmark = pytest.mark.realmodel

APIS = ["chat_completions", "responses"]
MODES = ["run", "run_sync", "run_streamed"]
BACKENDS = ["openai", "durable"]
PROGRAM = Path(__file__).parents[1] / "support" / "real_model_program.py"
PROMPT = "What is the weather in Paris right now?"
WEATHER = "Sunny, 21 degrees"
TIMEOUT = 180.0


# -- one agent with one clear tool -------------------------------------------------------------


def weather_agent(model: str | Model) -> tuple[Agent[Any], list[str]]:
    """The agent, and the list its tool appends each city it is really called with."""
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        calls.append(city)
        return f"{WEATHER} in {city}."

    agent = Agent(
        name="weather",
        instructions=(
            "You answer questions about the weather. Use the get_weather tool to look it up, "
            "then answer in one short sentence."
        ),
        model=model,
        model_settings=ModelSettings(temperature=0),
        tools=[get_weather],
    )
    return agent, calls


def sdk_model(base_url: str, model: str, api: str) -> Model:
    """The agent's own model object, as the durable backend uses it (a fresh client per run:
    an AsyncOpenAI client is bound to the event loop it first ran on)."""
    client = AsyncOpenAI(base_url=base_url, api_key=LocalModelServer.api_key, max_retries=0)
    if api == "responses":
        return OpenAIResponsesModel(model=model, openai_client=client)
    return OpenAIChatCompletionsModel(model=model, openai_client=client)


class Target:
    """One backend pointed at one endpoint and API; durable runs go to a temp SQLite file."""

    def __init__(self, kind: str, base_url: str, model: str, api: str, tmp: Path) -> None:
        self.kind, self.base_url, self.model, self.api = kind, base_url, model, api
        self.engine: LocalEngine | None = None
        self.backend: OpenAIBackend | DurableBackend
        if kind == "openai":
            self.backend = OpenAIBackend(OpenAISettings(base_url=base_url, api=api))  # type: ignore[arg-type]
        else:
            self.engine = LocalEngine(f"sqlite:///{tmp / 'runs.db'}")
            self.backend = DurableBackend(self.engine)

    def agent(self) -> tuple[Agent[Any], list[str]]:
        if self.kind == "openai":  # the model by name: the backend's settings pick the endpoint
            return weather_agent(self.model)
        return weather_agent(sdk_model(self.base_url, self.model, self.api))

    def execute(
        self, agent: Agent[Any], mode: str, prompt: str, **kwargs: Any
    ) -> tuple[RunResult | RunResultStreaming, list[StreamEvent]]:
        if mode == "run":
            return asyncio.run(self.backend.run(agent, prompt, **kwargs)), []
        if mode == "run_sync":
            return self.backend.run_sync(agent, prompt, **kwargs), []

        async def consume() -> tuple[RunResultStreaming, list[StreamEvent]]:
            result = self.backend.run_streamed(agent, prompt, **kwargs)
            return result, [event async for event in result.stream_events()]

        return asyncio.run(consume())

    def close(self) -> None:
        if self.engine is not None:
            asyncio.run(self.engine.dispose())


@pytest.fixture
def make_target(tmp_path: Path) -> Iterator[Any]:
    made: list[Target] = []

    def make(kind: str, base_url: str, model: str, api: str) -> Target:
        target = Target(kind, base_url, model, api, tmp_path)
        made.append(target)
        return target

    yield make
    for target in made:
        target.close()


# -- what every run must show ------------------------------------------------------------------


def tool_calls(result: RunResult | RunResultStreaming) -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for item in result.new_items:
        if isinstance(item, ToolCallItem):
            raw = item.raw_item
            name = getattr(raw, "name", None) or (raw.get("name") if isinstance(raw, dict) else "")
            arguments = getattr(raw, "arguments", None) or (
                raw.get("arguments") if isinstance(raw, dict) else "{}"
            )
            calls.append((str(name), json.loads(arguments or "{}")))
    return calls


def assert_called_and_answered(
    result: RunResult | RunResultStreaming, executed: list[str], city: str = "paris"
) -> None:
    """The model called get_weather for the city, the tool ran, a text answer came back."""
    calls = tool_calls(result)
    assert calls, f"the model did not call a tool; it said {result.final_output!r}"
    name, arguments = calls[0]
    assert name == "get_weather"
    assert city in str(arguments.get("city", "")).lower(), arguments
    assert executed, "the tool call was never executed"
    assert city in executed[0].lower()
    outputs = [i for i in result.new_items if isinstance(i, ToolCallOutputItem)]
    assert outputs
    assert WEATHER in str(outputs[0].output)
    assert isinstance(result.final_output, str)
    assert result.final_output.strip(), "empty final answer"


# -- both backends x both APIs x the three entry points ----------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", BACKENDS)
def test_tool_call_and_answer(
    local_model: LocalModelServer, make_target: Any, kind: str, api: str, mode: str
) -> None:
    target: Target = make_target(kind, local_model.base_url, local_model.model, api)
    agent, executed = target.agent()
    if kind == "durable":
        with run_id(f"weather-{api}-{mode}"):
            result, events = target.execute(agent, mode, PROMPT, max_turns=4)
    else:
        result, events = target.execute(agent, mode, PROMPT, max_turns=4)
    assert_called_and_answered(result, executed)
    if mode == "run_streamed":
        kinds = {(e.type, getattr(e, "name", None)) for e in events}
        assert ("run_item_stream_event", "tool_called") in kinds
        assert ("run_item_stream_event", "tool_output") in kinds
        assert ("run_item_stream_event", "message_output_created") in kinds
        deltas = [
            e
            for e in events
            if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"
        ]
        assert deltas, "the answer was not streamed as text deltas"


# -- multi-turn memory over Chat Completions ---------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_session_keeps_earlier_turns_over_chat_completions(
    local_model: LocalModelServer, make_target: Any, tmp_path: Path, kind: str
) -> None:
    """Chat Completions has no server-side memory: the second turn's request itself must carry
    the first turn (question, tool call, tool result, answer), as the session stored it."""
    with RecordingProxy(local_model.root_url) as proxy:
        target: Target = make_target(kind, proxy.base_url, local_model.model, "chat_completions")
        session = SQLiteSession("conversation", str(tmp_path / "session.db"))
        agent, executed = target.agent()
        first, _ = target.execute(agent, "run", PROMPT, session=session, max_turns=4)
        assert_called_and_answered(first, executed)
        first_answer = str(first.final_output)

        proxy.clear()
        follow_up = "Thanks. Which city did I just ask you about?"
        second, _ = target.execute(agent, "run", follow_up, session=session, max_turns=4)
        assert str(second.final_output).strip()

    request = proxy.model_requests()[0].body  # the second turn's first model call
    messages = request["messages"]
    user_turns = [m["content"] for m in messages if m["role"] == "user"]
    assert user_turns[:1] == [PROMPT]
    assert user_turns[-1] == follow_up
    assert any(m["role"] == "assistant" and m.get("tool_calls") for m in messages)
    assert any(m["role"] == "tool" and WEATHER in str(m.get("content")) for m in messages)
    answers = [str(m.get("content") or "") for m in messages if m["role"] == "assistant"]
    assert any(first_answer.strip()[:40] in a for a in answers)  # the first answer, too

    stored = asyncio.run(session.get_items())
    stored_text = json.dumps(stored, default=str)
    assert PROMPT in stored_text
    assert follow_up in stored_text
    assert PROMPT in json.dumps(second.to_input_list(), default=str)


# -- a durable run killed -9 mid-tool, resumed in a fresh process ------------------------------


def _start(args: list[str], cwd: Path, marker: Path | None) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("BLOCK_MARKER", None)
    if marker is not None:
        env["BLOCK_MARKER"] = str(marker)
    return subprocess.Popen(
        [sys.executable, str(PROGRAM), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _show(database: Path, rid: str) -> dict[str, Any]:
    result = CliRunner().invoke(build_app(), ["runs", "show", rid, "--json", "--db", str(database)])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _model_ordinals(show: dict[str, Any]) -> list[int]:
    return [s["payload"]["ordinal"] for s in show["steps"] if s["type"] == "model_call"]


@pytest.mark.parametrize("api", APIS)
def test_durable_run_killed_mid_tool_resumes_without_asking_the_model_again(
    local_model: LocalModelServer, tmp_path: Path, api: str
) -> None:
    database = tmp_path / "runs.db"
    marker = tmp_path / "blocked"
    calls_log = tmp_path / "calls.log"
    rid = f"order-{api}"
    with RecordingProxy(local_model.root_url) as proxy:
        args = [rid, proxy.base_url, local_model.model, f"sqlite:///{database}", api]
        proc = _start(args, tmp_path, marker)
        try:
            deadline = time.monotonic() + TIMEOUT
            while not (marker.exists() and marker.read_text().endswith("\n")):
                if proc.poll() is not None:
                    out, err = proc.communicate()
                    pytest.fail(f"the run ended ({proc.returncode}) before its tool:\n{out}{err}")
                assert time.monotonic() < deadline, "the tool was never reached"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no lease release, no journal flush
            proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == -signal.SIGKILL

        before = proxy.model_requests()
        assert len(before) == 1  # the model asked for the tool; the process died inside it
        killed = _show(database, rid)
        assert killed["run"]["status"] == "running"
        assert _model_ordinals(killed) == [0]
        assert calls_log.read_text().count("\n") == 1
        assert "4417" in calls_log.read_text()  # the model's argument, as the tool received it

        proxy.clear()
        resumed = _start(args, tmp_path, marker=None)
        out, err = resumed.communicate(timeout=TIMEOUT)
        assert resumed.returncode == 0, err
        final = json.loads(out.strip().splitlines()[-1])["final_output"]
        assert final.strip()
        after = proxy.model_requests()

    # The recorded tool call was replayed from the journal, not asked for again: every model
    # request of the fresh process already carries the tool's result (a repeated first call
    # would carry only the question).
    assert after, "the resumed run never reached the model"
    for request in after:
        assert ORDER_STATUS in request.text, "the resumed process asked the model from scratch"
        assert ORDER_PROMPT in request.text
    # The tool was in flight at the kill, so it ran again (at least once), nothing else did.
    assert calls_log.read_text().count("\n") == 2

    done = _show(database, rid)
    run = done["run"]
    assert run["status"] == "completed"
    ordinals = _model_ordinals(done)
    assert ordinals == list(range(len(ordinals))), "an ordinal was journaled twice or skipped"
    assert run["model_calls"] == len(ordinals) == 1 + len(after)
    assert run["final_output"] == final
