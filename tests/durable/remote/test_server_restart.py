"""A server killed with SIGKILL in the middle of a run, then started again: the program, pointed
at it by RUNPLANE_SERVER_URL alone, waits for it (its writes are retried), goes on, and loses
nothing the server had acknowledged; no model call and no tool runs twice."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from runplane_durable import LocalEngine
from runplane_durable.records import JournalRecord, RunRecord
from support.durable import run_async, sqlite_url
from support.durable_server import Server, server_env

PROGRAM = '''
import os, sys, time
from pathlib import Path
from agents import Agent, function_tool
from agents.testing import ScriptedModel, ModelStep, assistant_message, function_call
from runplane_durable import Runner, run_id

def log(name, line):
    with open(name, "a") as f:
        f.write(line + "\\n")

@function_tool
def slow(n: int) -> str:
    """Waits for the test's go, a side effect that must not be repeated."""
    log("calls.log", f"slow {n}")
    Path("waiting").write_text("yes\\n")
    while not Path("go").exists():
        time.sleep(0.02)
    return f"slow-{n}"

def respond(call):
    seen = [i for i in call.input if isinstance(call.input, list)
            and (i.get("type") if isinstance(i, dict) else getattr(i, "type", None))
            == "function_call_output"]
    log("model.log", str(len(seen)))
    if len(seen) < 2:
        return [function_call("slow", {"n": len(seen)}, call_id=f"call-{len(seen)}")]
    return [assistant_message("done")]

model = ScriptedModel([ModelStep.respond(respond) for _ in range(3)])
agent = Agent(name="worker", model=model, tools=[slow])
with run_id(sys.argv[1]):
    result = Runner.run_sync(agent, "go")
print(result.final_output)
'''


def _wait(path: Path, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_server_killed_mid_run_and_restarted_loses_nothing(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    url = sqlite_url(tmp_path) if database == "sqlite" else str(request.getfixturevalue("pg_url"))
    rid = f"restart-{database}-{tmp_path.name}"
    (tmp_path / "program.py").write_text(PROGRAM)
    server = Server(url, tmp_path / "server.log")
    server.start()
    proc = subprocess.Popen(
        [sys.executable, "program.py", rid],
        cwd=tmp_path,
        env=server_env(server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(tmp_path / "waiting", proc)  # the first tool runs; model call 0 is acknowledged
        server.kill9()
        (tmp_path / "go").write_text("")  # the tool returns: its output goes to a dead server
        time.sleep(1.0)  # the program retries meanwhile
        assert proc.poll() is None, proc.communicate()
        server.start()  # the same port: the program's URL is unchanged
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.stop()
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == "done"
    assert "did not answer" in err  # it said it was retrying
    lines = {n: (tmp_path / n).read_text().split("\n")[:-1] for n in ("model.log", "calls.log")}
    assert lines == {"model.log": ["0", "1", "2"], "calls.log": ["slow 0", "slow 1"]}

    async def stored() -> tuple[RunRecord, list[JournalRecord], list[str]]:
        engine = LocalEngine(url)
        try:
            run = await engine.get_run(rid)
            journal = await engine.read_journal(rid)
            events = await engine.list_events(rid)
        finally:
            await engine.dispose()
        return run, journal, [e.type for e in events]

    run, journal, types = run_async(stored())
    assert (run.status, run.owner) == ("completed", None)
    assert [(r.kind, r.key) for r in journal] == [
        ("model", "0"),
        ("tool", "1:call-0"),
        ("model", "1"),
        ("tool", "2:call-1"),
        ("model", "2"),
    ]
    assert types == [
        "attempt_started",
        "model_call",
        "tool_call",
        "model_call",
        "tool_call",
        "model_call",
        "attempt_ended",
        "run_completed",
    ]
