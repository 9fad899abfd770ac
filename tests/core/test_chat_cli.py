"""`runplane chat` as a user runs it: a subprocess reading stdin, against a real OpenAI-compatible
HTTP server on 127.0.0.1 (tests/support/openai_server.py) scripted turn by turn."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.host_program import POLICY
from support.openai_server import ErrorReply, RecordedRequest, Reply, ScriptedOpenAIServer, Usage
from support.weather import API_KEY

from runplane.cli import main

TESTS = Path(__file__).parents[1]


def chat(
    server: ScriptedOpenAIServer,
    stdin: str,
    *args: str,
    tmp_path: Path,
    database: str | None = None,
) -> subprocess.CompletedProcess[str]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    path = os.pathsep.join(p for p in [str(TESTS), os.environ.get("PYTHONPATH", "")] if p)
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        "COLUMNS": "200",
    }
    for name in ("RUNPLANE_BACKEND", "RUNPLANE_OPENAI_API", "RUNPLANE_OPENAI_BASE_URL"):
        env.pop(name, None)
    if database is not None:
        env["RUNPLANE_DATABASE_URL"] = database
    command = [
        sys.executable,
        "-m",
        "runplane",
        "chat",
        "--base-url",
        server.base_url,
        "--model",
        "gpt-test",
        "--system",
        "You help.",
        "--tools",
        "support.host_program:TOOLS",
        "--policy",
        str(policy),
        *(args if "--backend" in args else ("--backend", "openai", *args)),
    ]
    return subprocess.run(
        command, input=stdin, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def messages(request: RecordedRequest) -> list[dict[str, Any]]:
    return list(request.body["messages"])


def test_multi_turn_chat_completions_with_a_tool_an_approval_and_an_error(
    server: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    server.enqueue(
        Reply.tool("get_weather", {"city": "Paris"}, call_id="w1", usage=Usage(11, 3)),
        Reply.message("Sunny in Paris.", usage=Usage(20, 4)),
        Reply.message("You asked about the weather in Paris."),
        Reply.tool("pay", {"amount": 500}, call_id="p1"),
        Reply.message("Paid 500 euros."),
        Reply.tool("pay", {"amount": 900}, call_id="p2"),
        Reply.message("I did not pay."),
        ErrorReply(400, "the scripted server refuses this one"),
        Reply.message("Still here."),
    )
    stdin = "\n".join(
        [
            "What is the weather in Paris?",
            "What did I ask first?",
            "Please pay 500 euros.",
            "y",
            "Please pay 900 euros.",
            "n Too much today.",
            "break",
            "Are you there?",
            "/exit",
        ]
    )
    proc = chat(server, stdin + "\n", tmp_path=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr + out
    requests = server.model_requests("chat_completions")
    assert len(requests) == 9
    assert all(r.streamed for r in requests)
    # The system prompt carries the authority's text; the tools are the host's.
    system = messages(requests[0])[0]
    assert system["role"] == "system"
    assert system["content"].startswith("You help.\n\nAuthority:")
    assert "large payments" in system["content"]
    assert requests[0].tool_names() == ["get_weather", "pay"]
    # Turn 2 carries turn 1 whole: the question, the tool call and its output, the answer.
    second = messages(requests[2])
    assert [m["role"] for m in second] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert second[1]["content"] == "What is the weather in Paris?"
    assert second[3] == {"role": "tool", "tool_call_id": "w1", "content": "Sunny in Paris"}
    assert second[4]["content"] == "Sunny in Paris."
    # The approved payment ran; the rejected one did not and the model got the reason.
    assert messages(requests[4])[-1] == {
        "role": "tool",
        "tool_call_id": "p1",
        "content": "paid 500",
    }
    assert messages(requests[6])[-1]["content"] == "Too much today."
    # After the failed turn the conversation went on, with all of its history.
    last = messages(requests[8])
    assert last[1]["content"] == "What is the weather in Paris?"
    assert last[-1]["content"] == "Are you there?"
    # What the user saw.
    for shown in (
        'tool get_weather({"city": "Paris"})',
        "-> get_weather: Sunny in Paris",
        "agent> Sunny in Paris.",
        "usage: 2 model call(s), 31 in, 7 out, 38 total",
        "agent> You asked about the weather in Paris.",
        'approval needed pay({"amount": 500}) [p1]',
        'approve pay({"amount": 500})? [y/n] y',
        "approved pay [p1]",
        "-> pay: paid 500",
        "agent> Paid 500 euros.",
        "rejected pay [p2]: Too much today.",
        "turn failed: BadRequestError",
        "(the conversation goes on)",
        "agent> Still here.",
    ):
        assert shown in out, f"{shown!r} not in:\n{out}"


def test_the_responses_api_keeps_the_history_too(
    server: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    server.enqueue(Reply.message("Hello!"), Reply.message("You said hi."))
    proc = chat(server, "hi\nWhat did I say?\n", "--api", "responses", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    second = server.model_requests("responses")[1].body
    said = [i.get("content") for i in second["input"] if i.get("role") == "user"]
    assert said == ["hi", "What did I say?"]
    assert "agent> You said hi." in proc.stdout


def test_the_same_chat_on_the_durable_backend(server: ScriptedOpenAIServer, tmp_path: Path) -> None:
    server.enqueue(
        Reply.tool("pay", {"amount": 500}, call_id="p1"),
        Reply.message("Paid 500 euros."),
        Reply.message("You asked me to pay 500 euros."),
    )
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    stdin = "Please pay 500 euros.\ny\nWhat did I ask first?\n"
    proc = chat(server, stdin, "--backend", "durable", tmp_path=tmp_path, database=db)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "approved pay [p1]" in proc.stdout
    assert "agent> You asked me to pay 500 euros." in proc.stdout
    said = [m["content"] for m in messages(server.model_requests()[2]) if m["role"] == "user"]
    assert said == ["Please pay 500 euros.", "What did I ask first?"]
    listed = subprocess.run(
        [sys.executable, "-m", "runplane", "runs", "list", "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    runs = json.loads(listed.stdout)
    # Two turns, two durable runs; the approved one continued under its own id.
    assert sorted(r["status"] for r in runs) == ["completed", "completed"]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(["chat", *args])
    return int(exited.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--tools", "nocolon"], "give MODULE:ATTR"),
        (["--tools", "no_such_module_x:T"], "cannot import 'no_such_module_x'"),
        (["--tools", "json:NOPE"], "module 'json' has no 'NOPE'"),
        (["--tools", "json:dumps"], "function 'dumps' is not an Agents SDK tool"),
        (["--policy", "/nonexistent/policy.toml"], "no such policy file"),
        (["--backend", "no-such-backend"], "no-such-backend"),
    ],
)
def test_bad_options_are_clear_errors(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(args, capsys)
    assert code == 2
    assert said in " ".join(err.split()), err


def test_an_unknown_api_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["--api", "soap"], capsys)
    assert code == 2
    words = " ".join(w for w in err.split() if w.strip("│╭╮╰╯─"))
    assert "'soap' is neither 'responses' nor 'chat_completions'" in words


def test_the_help_lists_the_options() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runplane", "chat", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0
    for option in (
        "--backend",
        "--model",
        "--base-url",
        "--api",
        "--system",
        "--policy",
        "--tools",
    ):
        assert option in proc.stdout


def test_ctrl_c_ends_the_chat_with_exit_code_130() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runplane", "chat", "--model", "gpt-test"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": API_KEY, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("runplane chat: backend")  # waiting for a prompt
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        proc.kill()
        proc.communicate()


def test_tools_are_found_in_the_current_directory_by_the_console_script(
    server: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    (tmp_path / "shop_tools.py").write_text(
        "from agents import function_tool\n\n"
        "@function_tool\ndef stock(item: str) -> str:\n"
        '    """How many are in stock."""\n    return f"3 {item} in stock"\n'
    )
    server.enqueue(Reply.tool("stock", {"item": "lamps"}), Reply.message("Three lamps."))
    runplane_script = Path(sys.executable).parent / "runplane"
    env = {
        k: v for k, v in os.environ.items() if k not in ("RUNPLANE_BACKEND", "RUNPLANE_OPENAI_API")
    }
    command = [str(runplane_script), "chat", "--base-url", server.base_url, "--model", "gpt-test"]
    proc = subprocess.run(
        [*command, "--tools", "shop_tools:stock"],
        input="How many lamps?\n",
        cwd=tmp_path,
        env={**env, "OPENAI_API_KEY": API_KEY, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "-> stock: 3 lamps in stock" in proc.stdout


def test_in_a_terminal_the_text_is_rendered_live() -> None:
    from rich.console import Console

    from runplane.bridge import TextDelta, TextDone, ToolCalled
    from runplane.host.chat import ChatView

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    view = ChatView(console)
    common = {"run_id": "r", "agent_name": "a"}
    for delta in ("Hel", "lo ", "[there]"):
        view(TextDelta(**common, message_id="m", delta=delta))
    view(TextDone(**common, message_id="m", text="Hello [there]"))
    view(ToolCalled(**common, call_id="c1", tool_name="t", arguments="{}"))
    shown = buffer.getvalue()
    assert "agent> Hello [there]" in shown
    assert "tool t({})" in shown
