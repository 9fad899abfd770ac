"""Host events of runs against an OpenAI-compatible server on 127.0.0.1, in both API flavours, on
every backend: Chat Completions models give no item ids (the SDK's `__fake_id__`), so the bridge
makes them; usage per model call comes from the provider."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from runplane_conformance._bridged import normalised, recording
from runplane_openai.settings import ENV_API, ENV_API_KEY, ENV_BASE_URL
from support.durable import sqlite_url
from support.endpoint_fixtures import clear_endpoint_settings
from support.openai_server import ScriptedOpenAIServer
from support.weather import (
    ANSWER,
    API_KEY,
    CALL_ID,
    FIRST_USAGE,
    QUESTION,
    SECOND_USAGE,
    TOOL_OUTPUT,
    ApiName,
    script_weather,
    weather_agent,
)

import runplane
from runplane.bridge import HostEvent, bridge

THIRD_PARTY_SRC = Path(__file__).parents[1] / "third_party_backend" / "src"


@pytest.fixture
def registry(
    server: ScriptedOpenAIServer, api: ApiName, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> runplane.Registry:
    clear_endpoint_settings(monkeypatch)
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", sqlite_url(tmp_path))
    monkeypatch.setenv(ENV_BASE_URL, server.base_url)
    monkeypatch.setenv(ENV_API_KEY, API_KEY)
    monkeypatch.setenv(ENV_API, api)
    monkeypatch.syspath_prepend(str(THIRD_PARTY_SRC))
    import runplane_deadline.plugin  # type: ignore[import-not-found]

    reg = runplane.Registry()
    reg.register(runplane_deadline.plugin, name="runplane-deadline")
    return reg


def _told(
    registry: runplane.Registry, server: ScriptedOpenAIServer, backend: str, streamed: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    server.reset()
    script_weather(server)
    runner = runplane.runner(backend, registry=registry)
    agent, _ = weather_agent()
    iterated: list[HostEvent] = []

    async def stream() -> None:
        async for event in bridge(runner.run_streamed(agent, QUESTION)):
            iterated.append(event)

    with recording(registry) as recorder:
        if streamed:
            asyncio.run(stream())
        else:
            runner.run_sync(agent, QUESTION)
        run_id, hooked = recorder.only_run()
    return normalised(hooked, run_id), normalised(iterated, run_id) if streamed else None


@pytest.mark.parametrize("streamed", [True, False])
def test_a_weather_round_trip_is_told_alike_on_every_backend(
    registry: runplane.Registry, server: ScriptedOpenAIServer, api: ApiName, streamed: bool
) -> None:
    hooked, iterated = _told(registry, server, "openai", streamed)
    if streamed:
        assert iterated == hooked
    common = {"run_id": "<run>", "agent_name": "forecaster"}
    without = [e for e in hooked if e["kind"] != "text_delta"]
    done = [e for e in without if e["kind"] == "text_done"]
    assert len(done) == 1
    message_id = done[0]["message_id"]
    assert "__fake_id__" not in message_id
    if api == "chat_completions":
        assert message_id.startswith("<run>-msg-")  # made by the bridge from the run id
    assert without == [
        {**common, "kind": "run_started"},
        {
            **common,
            "kind": "model_usage",
            "requests": 1,
            "input_tokens": FIRST_USAGE.input_tokens,
            "output_tokens": FIRST_USAGE.output_tokens,
            "total_tokens": FIRST_USAGE.total_tokens,
        },
        {
            **common,
            "kind": "tool_called",
            "call_id": CALL_ID,
            "tool_name": "get_weather",
            "arguments": without[2]["arguments"],
        },
        {
            **common,
            "kind": "tool_output",
            "call_id": CALL_ID,
            "tool_name": "get_weather",
            "output": TOOL_OUTPUT,
        },
        {
            **common,
            "kind": "model_usage",
            "requests": 1,
            "input_tokens": SECOND_USAGE.input_tokens,
            "output_tokens": SECOND_USAGE.output_tokens,
            "total_tokens": SECOND_USAGE.total_tokens,
        },
        {**common, "kind": "text_done", "message_id": message_id, "text": ANSWER},
        {
            **common,
            "kind": "run_finished",
            "final_output": ANSWER,
            "usage": {
                "requests": 2,
                "input_tokens": FIRST_USAGE.input_tokens + SECOND_USAGE.input_tokens,
                "output_tokens": FIRST_USAGE.output_tokens + SECOND_USAGE.output_tokens,
                "total_tokens": FIRST_USAGE.total_tokens + SECOND_USAGE.total_tokens,
            },
        },
    ]
    assert '"city"' in without[2]["arguments"]
    deltas = [e["delta"] for e in hooked if e["kind"] == "text_delta"]
    assert ("".join(deltas) == ANSWER) if streamed else deltas == []
    for backend in ("durable", "deadline"):
        other_hooked, other_iterated = _told(registry, server, backend, streamed)
        assert _ids_blanked(other_hooked) == _ids_blanked(hooked), backend
        if streamed:
            assert other_iterated == other_hooked


def _ids_blanked(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The server numbers its message ids across requests: a second run's differ (msg_4, msg_8)."""
    return [{**e, "message_id": "<msg>"} if "message_id" in e else e for e in events]
