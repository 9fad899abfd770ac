"""`runplane_durable.Runner`: the drop-in class, selection by name, and `resume`."""

from __future__ import annotations

import inspect
from typing import Any

import agents
import pytest
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from runplane_durable import DurableBackend, Runner, RunNotFoundError, run_id
from support.durable import run_async

import runplane


def test_import_line_and_name_select_the_same_backend() -> None:
    assert issubclass(Runner, runplane.BackendRunner)
    assert Runner.selected_backend() == runplane.runner("durable").selected_backend() == "durable"
    assert isinstance(Runner.backend(), DurableBackend)
    assert Runner.backend() is runplane.runner("durable").backend()
    for method in ("run", "run_sync", "run_streamed"):
        expected = inspect.signature(getattr(agents.Runner, method), eval_str=True)
        assert inspect.signature(getattr(Runner, method), eval_str=True) == expected


class Halt(Exception):
    pass


def test_resume_continues_a_stopped_run_with_its_stored_input_and_options() -> None:
    calls: list[str] = []
    halt = {"on": True}

    @function_tool(failure_error_function=None)  # Halt escapes the tool, as a crash would
    def step(n: int) -> int:
        calls.append(f"step{n}")
        if n == 2 and halt["on"]:
            raise Halt("process stopped")
        return n

    def agent(model: Any) -> Agent[Any]:
        return Agent(name="stepper", tools=[step], model=model)

    script = [
        [function_call("step", {"n": 1}, call_id="s1")],
        [function_call("step", {"n": 2}, call_id="s2")],
        [assistant_message("stepped twice")],
    ]
    with run_id("resume-api"), pytest.raises(agents.UserError, match="process stopped"):
        Runner.run_sync(
            agent(ScriptedModel(script)), [{"role": "user", "content": "go"}], max_turns=7
        )
    halt["on"] = False
    result = run_async(Runner.resume("resume-api", agent(ScriptedModel(script[1:]))))
    assert result.final_output == "stepped twice"
    assert calls == ["step1", "step2", "step2"]
    record = run_async(Runner.get_run("resume-api"))
    assert record.status == "completed"
    assert record.options["max_turns"] == 7
    assert [r.id for r in run_async(Runner.list_runs(limit=500))].count("resume-api") == 1
    assert run_async(Runner.events("resume-api"))[-1].type == "run_completed"


def test_resume_of_an_unknown_run_says_where_it_looked() -> None:
    with pytest.raises(RunNotFoundError, match="runplane runs list"):
        run_async(Runner.resume("no-such-run", Agent(name="x")))
