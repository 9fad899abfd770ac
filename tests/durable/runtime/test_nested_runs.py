"""Runs started inside a durable run's tool (`Agent.as_tool`): their ids, their errors, their
durability with nothing but `from runplane_durable import Runner`."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import agents
import pydantic
import pytest
from agents import Agent, function_tool
from agents.items import ToolCallOutputItem
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from runplane_durable import DurableBackend, JournalSerializationError, run_id
from runplane_durable.names import MAX_RUN_ID
from support.durable import run_async
from support.durable_faults import Routed
from support.nested_programs import NestedProgram

import runplane


def _outer(inner: Agent[Any], answer: str = "done", call_id: str = "n1") -> Agent[Any]:
    return Agent(
        name="outer",
        tools=[inner.as_tool(tool_name="ask_inner", tool_description="Ask the inner agent.")],
        model=ScriptedModel(
            [
                [function_call("ask_inner", {"input": "q"}, call_id=call_id)],
                [assistant_message(answer)],
            ]
        ),
    )


def _tool_outputs(result: Any) -> list[Any]:
    return [i.output for i in result.new_items if isinstance(i, ToolCallOutputItem)]


async def _child(backend: DurableBackend, parent: str) -> Any:
    """The one run other than `parent` whose id starts like it (the database may hold others)."""
    runs = await backend.list_runs(limit=500)
    children = [r for r in runs if r.id != parent and r.id.startswith(parent[:100])]
    assert len(children) == 1, [r.id for r in children]
    return children[0]


def test_a_long_parent_id_gives_a_nested_run_an_id_that_fits(backend: DurableBackend) -> None:
    """A 175-character parent once gave its nested run a 207-character id: PostgreSQL refused it,
    the SDK made that the tool's output, and the run finished on a wrong answer."""
    parent = "p" * 175
    call_id = "call_" + "x" * 24  # as long as OpenAI's: the derived id would be 207 characters

    def program() -> Agent[Any]:
        inner = Agent(name="inner", model=ScriptedModel([[assistant_message("inner answer")]]))
        return _outer(inner, call_id=call_id)

    async def go() -> None:
        with Routed(backend, "durable-long-ids"), run_id(parent):
            result = await agents.Runner.run(program(), "go")
        assert _tool_outputs(result) == ["inner answer"]
        child = await _child(backend, parent)
        assert (child.agent_name, child.status) == ("inner", "completed")
        assert len(child.id) <= MAX_RUN_ID
        assert child.id.startswith(parent[:100])  # still readable: it names its parent
        # Derived, not random: the finished parent replays onto the very same child.
        silent = Agent(name="inner", model=ScriptedModel([]))
        with Routed(backend, "durable-long-ids"), run_id(parent):
            again = await agents.Runner.run(_outer(silent, call_id=call_id), "go")
        assert _tool_outputs(again) == ["inner answer"]
        assert await _child(backend, parent) == child

    run_async(go())


class Answer(pydantic.BaseModel):
    text: str


def test_a_durable_error_in_a_nested_run_fails_the_parent_as_itself(
    backend: DurableBackend,
) -> None:
    """The SDK turns a failing agent-tool into the text 'An error occurred while running the
    tool'; an error of the journal itself must never become a tool's output."""

    @function_tool
    def opaque() -> Any:
        """Return something the journal cannot store."""
        return object()

    inner = Agent(
        name="inner",
        tools=[opaque],
        tool_use_behavior="stop_on_first_tool",  # its output would be the final output itself
        output_type=Answer,
        model=ScriptedModel(
            [[function_call("opaque", {}, call_id="o1")], [assistant_message("x")]]
        ),
    )
    outer = _outer(inner, answer="a wrong answer")

    async def go() -> None:
        with (
            Routed(backend, "durable-nested-errors"),
            run_id("parent-of-a-failure"),
            pytest.raises(JournalSerializationError, match="tool 'opaque'"),
        ):
            await agents.Runner.run(outer, "go")
        parent = await backend.get_run("parent-of-a-failure")
        assert parent.status == "failed"
        assert parent.error_type == "runplane_durable.errors.JournalSerializationError"
        assert parent.owner is None
        assert parent.model_calls == 1  # the outer model never saw a tool output
        child = await _child(backend, "parent-of-a-failure")
        assert (child.status, child.error_type) == (parent.status, parent.error_type)

    run_async(go())


def test_a_custom_failure_function_does_not_swallow_a_durable_error(
    sqlite_backend: DurableBackend,
) -> None:
    @function_tool
    def opaque() -> Any:
        """Return something the journal cannot store."""
        return object()

    inner = Agent(
        name="inner",
        tools=[opaque],
        tool_use_behavior="stop_on_first_tool",  # its output would be the final output itself
        output_type=Answer,
        model=ScriptedModel(
            [[function_call("opaque", {}, call_id="o1")], [assistant_message("x")]]
        ),
    )
    outer = Agent(
        name="outer",
        tools=[
            inner.as_tool(
                tool_name="ask_inner",
                tool_description="Ask.",
                failure_error_function=lambda _ctx, error: f"handled: {error}",
            )
        ],
        model=ScriptedModel(
            [[function_call("ask_inner", {"input": "q"}, call_id="n1")], [assistant_message("x")]]
        ),
    )
    with (
        Routed(sqlite_backend, "durable-custom-failure"),
        run_id("custom-failure"),
        pytest.raises(JournalSerializationError),
    ):
        agents.Runner.run_sync(outer, "go")


# -- nested runs are durable with only the import line -------------------------------------------

# The durable run must say which backend runs it; the marker goes once backend.py passes
# `backend=self` to both of its `ActiveRun(...)` (issue #8).


class _Crash(BaseException):
    """Stands in for the process dying inside the inner run's second tool."""


def _nested_program(
    calls: list[str], worker_steps: list[Any], boss_steps: list[Any], *, crash: bool
) -> Agent[Any]:
    @function_tool
    def step(n: int) -> str:
        """One step of the inner job."""
        calls.append(f"step-{n}")
        if crash and n == 2:
            raise _Crash
        return f"STEP-{n}"

    worker = Agent(name="worker", tools=[step], model=ScriptedModel(worker_steps))
    return Agent(
        name="boss",
        tools=[worker.as_tool(tool_name="delegate", tool_description="Delegate the job.")],
        model=ScriptedModel(boss_steps),
    )


WORKER = [
    [function_call("step", {"n": 1}, call_id="s1")],
    [function_call("step", {"n": 2}, call_id="s2")],
    [assistant_message("worked")],
]
BOSS = [[function_call("delegate", {"input": "job"}, call_id="d1")], [assistant_message("done")]]


def test_a_nested_run_is_durable_without_install(backend: DurableBackend) -> None:
    """Only the backend's own entry point: `Agent.as_tool` calls the SDK's default runner, and
    the nested run it starts must be journaled under its derived id and resume from it."""
    calls: list[str] = []

    async def go() -> None:
        assert runplane.installed() is None
        with run_id("boss-run"), pytest.raises(_Crash):
            await backend.run(_nested_program(calls, WORKER, BOSS, crash=True), "go")
        child = await backend.get_run("boss-run/1:d1")
        assert (child.agent_name, child.model_calls, child.tool_calls) == ("worker", 2, 1)

        # Only the model calls the journals lack are scripted: any other would be answered wrong.
        worker_rest, boss_rest = ScriptedModel(WORKER[2:]), ScriptedModel(BOSS[1:])
        resumed = _nested_program(calls, [], [], crash=False)
        resumed.model = boss_rest
        resumed.tools[0]._agent_instance.model = worker_rest  # type: ignore[attr-defined]
        with run_id("boss-run"):
            result = await backend.run(resumed, "go")
        assert result.final_output == "done"
        # step 1 completed before the crash and ran once; step 2 was in flight and ran again.
        assert calls == ["step-1", "step-2", "step-2"]
        assert (worker_rest.remaining_steps, boss_rest.remaining_steps) == (0, 0)
        child = await backend.get_run("boss-run/1:d1")
        assert (child.status, child.final_output) == ("completed", {"json": "worked"})

    run_async(go())


def test_runs_outside_durable_runs_still_use_the_sdk_runner(backend: DurableBackend) -> None:
    """The routing is scoped to a durable run's tools: the SDK's own runs are untouched, even
    after a durable run has started a nested run in this process."""
    with run_id("scoped"):
        backend.run_sync(_nested_program([], WORKER, BOSS, crash=False), "go")
    before = {r.id for r in run_async(backend.list_runs(limit=500))}
    assert {"scoped", "scoped/1:d1"} <= before
    result = agents.Runner.run_sync(_nested_program([], WORKER, BOSS, crash=False), "go")
    assert result.final_output == "done"
    assert {r.id for r in run_async(backend.list_runs(limit=500))} == before


def test_a_thread_running_the_sdk_during_a_durable_tool_is_not_routed(
    backend: DurableBackend,
) -> None:
    """The routing is scoped to the tool's own context: a plain SDK run in another thread, made
    while a durable run's tool is running, nests its runs on the SDK's runner."""
    outcome: list[Any] = []

    @function_tool
    def meanwhile() -> str:
        """Run an unrelated SDK program in another thread and wait for it."""
        thread = threading.Thread(
            target=lambda: outcome.append(
                agents.Runner.run_sync(_nested_program([], WORKER, BOSS, crash=False), "go")
            )
        )
        thread.start()
        thread.join(timeout=60)
        return "waited"

    agent = Agent(
        name="waiter",
        tools=[meanwhile],
        model=ScriptedModel(
            [[function_call("meanwhile", {}, call_id="m1")], [assistant_message("ok")]]
        ),
    )
    with run_id("waiter-run"):
        assert backend.run_sync(agent, "go").final_output == "ok"
    assert [r.final_output for r in outcome] == ["done"]
    ids = {r.id for r in run_async(backend.list_runs(limit=500))}
    assert "waiter-run" in ids
    assert not {i for i in ids if i.startswith("waiter-run/")}


@pytest.fixture
def nested_program(tmp_path: Path) -> Iterator[NestedProgram]:
    prog = NestedProgram(tmp_path)
    try:
        yield prog
    finally:
        prog.cleanup()


@pytest.mark.slow
def test_kill_9_inside_a_nested_run_then_resume(nested_program: NestedProgram) -> None:
    """`from runplane_durable import Runner` only; the process dies inside the nested run."""
    proc = nested_program.start_run("nested-1", block="step_2:mid")
    assert nested_program.wait_started(proc) == "step_2:mid"
    nested_program.kill9(proc)
    assert nested_program.tool_calls() == ["step_1 call-s1", "step_2 call-s2"]
    assert nested_program.agent_model_calls() == ["boss 0", "worker 0", "worker 1"]
    child = nested_program.show("nested-1/1:call-delegate")["run"]
    assert (child["status"], child["model_calls"], child["tool_calls"]) == ("running", 2, 1)

    assert nested_program.run_to_end("nested-1") == "boss: STEP-1 STEP-2"
    # Nothing a journal held ran again: step_2 was in flight, so it is the one tool repeated.
    assert nested_program.tool_calls() == ["step_1 call-s1", "step_2 call-s2", "step_2 call-s2"]
    assert nested_program.agent_model_calls() == [
        "boss 0",
        "worker 0",
        "worker 1",
        "worker 2",
        "boss 1",
    ]
    child = nested_program.show("nested-1/1:call-delegate")["run"]
    assert (child["status"], child["final_output"]) == ("completed", "STEP-1 STEP-2")


def _asker(name: str, answers: list[str]) -> Agent[Any]:
    return Agent(name=name, model=ScriptedModel([[assistant_message(a)] for a in answers]))


def _consulting_boss(
    reviewer: Agent[Any], second: Agent[Any], *, gather: bool, crash: bool = False
) -> Agent[Any]:
    """A function tool that starts two runs itself: one per sub-agent, in order or at once."""

    @function_tool
    async def consult(question: str) -> str:
        """Ask both sub-agents."""
        if gather:
            first, other = await asyncio.gather(
                agents.Runner.run(reviewer, question), agents.Runner.run(second, question)
            )
        else:
            first = await agents.Runner.run(reviewer, question)
            other = await agents.Runner.run(second, question)
        if crash:
            raise _Crash
        return f"{first.final_output} + {other.final_output}"

    return Agent(
        name="boss",
        tools=[consult],
        model=ScriptedModel(
            [[function_call("consult", {"question": "q"}, call_id="c1")], [assistant_message("ok")]]
        ),
    )


@pytest.mark.parametrize("gather", [False, True], ids=["in-order", "gathered"])
@pytest.mark.parametrize("same_agent", [False, True], ids=["two-agents", "one-agent-twice"])
def test_two_runs_started_by_one_tool_call_are_two_nested_runs(
    backend: DurableBackend, gather: bool, same_agent: bool
) -> None:
    """Each run a tool starts gets its own derived id, in the order the tool starts them, so
    the second is neither refused as "a different input" nor answered from the first's result;
    and a re-run of the finished parent reads both back."""
    rid = f"consulting-{uuid.uuid4().hex[:8]}"  # the PostgreSQL database is shared by tests
    second_name = "reviewer" if same_agent else "critic"
    crashing = _consulting_boss(
        _asker("reviewer", ["first view"]),
        _asker(second_name, ["second view"]),
        gather=gather,
        crash=True,
    )
    with run_id(rid), pytest.raises(_Crash):  # both nested runs finished, then a crash
        backend.run_sync(crashing, "go")
    # The resumed tool starts both runs again: each is read back from its own journal (its
    # model has nothing left to say), in the order the tool starts them.
    boss = _consulting_boss(_asker("reviewer", []), _asker(second_name, []), gather=gather)
    boss.model = ScriptedModel([[assistant_message("ok")]])
    with run_id(rid):
        result = backend.run_sync(boss, "go")
    assert _tool_outputs(result) == ["first view + second view"]
    children = sorted(
        (r.id, r.final_output)
        for r in run_async(backend.list_runs(limit=500))
        if r.id.startswith(f"{rid}/")
    )
    assert children == [
        (f"{rid}/1:c1", {"json": "first view"}),
        (f"{rid}/1:c1#2", {"json": "second view"}),
    ]


def _usage_of(result: Any) -> tuple[int, int, int, int, int]:
    u = result.context_wrapper.usage
    return (
        u.requests,
        u.input_tokens,
        u.output_tokens,
        u.total_tokens,
        len(u.request_usage_entries),
    )


def _costly(n: int, *output: Any) -> ModelStep:
    return ModelStep(
        output=list(output),
        usage=Usage(requests=1, input_tokens=10 * n, output_tokens=n, total_tokens=11 * n),
    )


def _parallel_boss(inner_steps: list[Any], boss_steps: list[Any]) -> Agent[Any]:
    """A turn with two tool calls side by side: a nested run, and a plain tool that waits."""

    @function_tool
    async def slow() -> str:
        """Wait a little."""
        await asyncio.sleep(0.05)
        return "slow done"

    inner = Agent(name="inner", model=ScriptedModel(inner_steps))
    return Agent(
        name="boss",
        tools=[inner.as_tool(tool_name="ask_inner", tool_description="Ask."), slow],
        model=ScriptedModel(boss_steps),
    )


def test_a_replayed_parent_reports_the_usage_its_nested_runs_added(
    backend: DurableBackend,
) -> None:
    """The SDK counts a nested run's model calls in its parent's usage; a replay, which takes
    the nested tool's output from the journal, must report the same usage, and a plain tool
    running beside it must not count the nested run's calls again."""
    rid = f"usage-{uuid.uuid4().hex[:8]}"
    inner = [_costly(1, assistant_message("inner says")), _costly(2, assistant_message("more"))]
    boss = [
        _costly(
            3,
            function_call("ask_inner", {"input": "q"}, call_id="n1"),
            function_call("slow", {}, call_id="s1"),
        ),
        _costly(4, assistant_message("done")),
    ]
    with run_id(rid):
        live = backend.run_sync(_parallel_boss(inner[:1], boss), "go")
    assert _usage_of(live) == (3, 80, 8, 88, 3)
    with run_id(rid):  # finished: replayed from the journals, no model is asked
        replayed = backend.run_sync(_parallel_boss([], []), "go")
    assert replayed.final_output == "done"
    assert _usage_of(replayed) == _usage_of(live)
