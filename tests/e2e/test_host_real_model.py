"""`runplane chat` end to end against the real local model (llama.cpp, Qwen2.5-Coder-0.5B).

A subprocess reading stdin, as a user runs it, over Chat Completions through a recording proxy:
the model calls the one tool, the policy asks for approval and stdin answers y, the tool runs,
an answer comes back; the second turn's request carries the first turn (its question and the
tool's output). Assertions suit a 0.5B model: names exactly, texts loosely."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from runplane_localmodel import LocalModelServer
from support.recording_proxy import RecordingProxy

pytestmark = pytest.mark.realmodel

TESTS = Path(__file__).parents[1]
POLICY = """
[[rules]]
name = "weather lookups"
tools = ["get_weather"]
"""
SYSTEM = (
    "You answer questions about the weather. Use the get_weather tool to look it up, then "
    "answer in one short sentence."
)


@pytest.mark.parametrize("backend", ["openai", "durable"])
def test_chat_with_the_real_model_keeps_earlier_turns(
    local_model: LocalModelServer, tmp_path: Path, backend: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    path = os.pathsep.join(p for p in [str(TESTS), os.environ.get("PYTHONPATH", "")] if p)
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "OPENAI_API_KEY": LocalModelServer.api_key,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        "RUNPLANE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}",
        "COLUMNS": "200",
    }
    stdin = (
        "What is the weather in Paris right now?\ny\nThanks. Which city did I ask about?\n/exit\n"
    )
    with RecordingProxy(local_model.root_url) as proxy:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "runplane",
                "chat",
                "--backend",
                backend,
                "--base-url",
                proxy.base_url,
                "--model",
                local_model.model,
                "--system",
                SYSTEM,
                "--tools",
                "support.host_program:WEATHER_TOOLS",
                "--policy",
                str(policy),
                "--max-turns",
                "4",
            ],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        requests = proxy.model_requests()
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr + out
    assert "tool get_weather(" in out, out
    assert "approval needed get_weather(" in out, out
    assert "approved get_weather" in out, out
    assert "-> get_weather: Sunny in" in out, out
    assert "agent> " in out, out
    assert "usage: " in out, out
    # The last request is the second turn's: it carries the first question and the tool's output.
    last = requests[-1].body["messages"]
    users = [m["content"] for m in last if m["role"] == "user"]
    assert users[0] == "What is the weather in Paris right now?", last
    assert users[-1] == "Thanks. Which city did I ask about?", last
    assert any(m["role"] == "tool" and "Sunny in" in str(m["content"]) for m in last), last
