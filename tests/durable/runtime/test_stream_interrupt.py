"""A streamed run that is interrupted stays resumable; only the caller's own cancel() ends it.

Interruptions the caller did not mean as "cancel this run" (a `wait_for` timeout, a cancelled
consuming task, a loop that ends with the stream abandoned, Ctrl-C) stop the run and release its
lease, like a crash would, so the same run id resumes at once from its journal. `result.cancel()`
by the caller, in either mode, records the run as `cancelled`, which is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    RunResultStreaming,
    function_tool,
    input_guardrail,
)
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from runplane_durable import (
    DurableBackend,
    LocalEngine,
    RunCancelledError,
    RunNotFoundError,
    RunRecord,
    run_id,
)
from support.durable_programs import TIMEOUT, CrashProgram, final_output

PROMPT = "Do the step, then report."
FINAL = "done: STEP"


@dataclass
class Ledger:
    """What really ran, over every attempt of one run; `open` lets the tool finish."""

    model_calls: list[int] = field(default_factory=list)
    tool_runs: int = 0
    open: bool = False
    started: asyncio.Event | None = None


def _agent(ledger: Ledger) -> Agent[Any]:
    """Turn 1 asks for the tool, turn 2 reports its output; the step is read from the input."""

    @function_tool
    async def step() -> str:
        """Do the step."""
        ledger.tool_runs += 1
        if ledger.started is not None:
            ledger.started.set()
        if not ledger.open:
            await asyncio.Event().wait()  # until the interruption cancels it
        return "STEP"

    def respond(call: ModelCall) -> list[Any]:
        items = call.input if isinstance(call.input, list) else []
        outputs = [i["output"] for i in items if i.get("type") == "function_call_output"]
        ledger.model_calls.append(len(outputs))
        if not outputs:
            return [function_call("step", {}, call_id="s1")]
        return [assistant_message(f"done: {outputs[0]}")]

    return Agent(
        name="interrupted",
        tools=[step],
        model=ScriptedModel([ModelStep.respond(respond) for _ in range(2)]),
    )


def _start(backend: DurableBackend, rid: str, ledger: Ledger) -> RunResultStreaming:
    ledger.started = asyncio.Event()
    with run_id(rid):
        return backend.run_streamed(_agent(ledger), PROMPT)


async def _consume(result: RunResultStreaming) -> None:
    async for _ in result.stream_events():
        pass


async def _drain(events: AsyncIterator[Any]) -> None:
    async for _ in events:
        pass


async def _assert_stopped_then_resume(backend: DurableBackend, rid: str, ledger: Ledger) -> None:
    """Stopped, not cancelled: no owner, and the same id finishes without re-asking the model."""
    record = await backend.get_run(rid)
    assert (record.status, record.owner) == ("running", None)
    assert (ledger.model_calls, ledger.tool_runs) == ([0], 1)  # interrupted inside the tool

    ledger.open = True
    result = _start(backend, rid, ledger)  # the same id, at once
    await _consume(result)
    assert result.final_output == FINAL
    assert ledger.model_calls == [0, 1]  # model call #1 came from the journal
    assert ledger.tool_runs == 2  # the tool in flight ran again, as after a crash
    record = await backend.get_run(rid)
    assert (record.status, record.owner, record.final_output) == (
        "completed",
        None,
        {"json": FINAL},
    )


def test_a_wait_for_timeout_around_consuming_leaves_the_run_resumable(db_url: str) -> None:
    async def go() -> None:
        backend = DurableBackend(LocalEngine(db_url))
        ledger = Ledger()
        result = _start(backend, "timed-out", ledger)
        events = result.stream_events()
        async for event in events:  # up to the tool, which then waits forever
            if getattr(event, "name", None) == "tool_called":
                break
        assert ledger.started is not None
        await ledger.started.wait()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(_drain(events), timeout=0.2)
        await _assert_stopped_then_resume(backend, "timed-out", ledger)
        await backend.engine.dispose()

    asyncio.run(go())


def test_a_cancelled_consuming_task_leaves_the_run_resumable(db_url: str) -> None:
    """Also what a web server does to the handler of a client that disconnects."""

    async def go() -> None:
        backend = DurableBackend(LocalEngine(db_url))
        ledger = Ledger()
        result = _start(backend, "consumer-cancelled", ledger)
        consumer = asyncio.ensure_future(_consume(result))
        assert ledger.started is not None
        await ledger.started.wait()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await _assert_stopped_then_resume(backend, "consumer-cancelled", ledger)
        await backend.engine.dispose()

    asyncio.run(go())


async def _check_then_resume(db_url: str, rid: str, ledger: Ledger) -> None:
    backend = DurableBackend(LocalEngine(db_url))
    await _assert_stopped_then_resume(backend, rid, ledger)
    await backend.engine.dispose()


def test_breaking_out_of_the_stream_and_ending_the_loop_leaves_the_run_resumable(
    db_url: str,
) -> None:
    """The loop's teardown closes the abandoned stream and cancels the run: a stop, not an end."""
    ledger = Ledger()

    async def go() -> None:
        result = _start(DurableBackend(LocalEngine(db_url)), "broke-out", ledger)
        async for event in result.stream_events():
            if getattr(event, "name", None) == "tool_called":
                break
        assert ledger.started is not None
        await ledger.started.wait()

    asyncio.run(go())
    asyncio.run(_check_then_resume(db_url, "broke-out", ledger))


def test_keyboard_interrupt_while_consuming_leaves_the_run_resumable(db_url: str) -> None:
    ledger = Ledger()

    async def go() -> None:
        result = _start(DurableBackend(LocalEngine(db_url)), "interrupted", ledger)
        async for event in result.stream_events():
            if getattr(event, "name", None) == "tool_called":
                assert ledger.started is not None
                await ledger.started.wait()
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(go())
    asyncio.run(_check_then_resume(db_url, "interrupted", ledger))


@pytest.mark.parametrize("mode", ["immediate", "after_turn"])
def test_the_callers_own_cancel_is_final(
    db_url: str, mode: Literal["immediate", "after_turn"]
) -> None:
    async def go() -> None:
        backend = DurableBackend(LocalEngine(db_url))
        ledger = Ledger(open=mode == "after_turn")  # after_turn lets the turn's tool finish
        rid = f"cancel-{mode}"
        result = _start(backend, rid, ledger)
        async for event in result.stream_events():
            if getattr(event, "name", None) == "tool_called":
                result.cancel(mode)
        assert result.final_output is None
        assert ledger.model_calls == [0]  # after_turn stopped before the next turn
        record = await backend.get_run(rid)
        assert (record.status, record.owner) == ("cancelled", None)
        with run_id(rid), pytest.raises(RunCancelledError, match="was cancelled"):
            await backend.run(_agent(ledger), PROMPT)
        await backend.engine.dispose()

    asyncio.run(go())


def test_cancel_from_another_task_while_the_consumer_waits_is_final(tmp_path: Path) -> None:
    """The caller's cancel() is told apart from the one the SDK makes for a cancelled consumer."""

    async def go() -> None:
        backend = DurableBackend(LocalEngine(f"sqlite:///{tmp_path / 'runs.db'}"))
        ledger = Ledger()
        result = _start(backend, "cancelled-elsewhere", ledger)
        consumer = asyncio.ensure_future(_consume(result))
        assert ledger.started is not None
        await ledger.started.wait()
        result.cancel()
        await asyncio.wait_for(consumer, TIMEOUT)
        record = await backend.get_run("cancelled-elsewhere")
        assert (record.status, record.owner) == ("cancelled", None)
        await backend.engine.dispose()

    asyncio.run(go())


# -- a real Ctrl-C, in a process of its own -----------------------------------------------------

MODES = ["run", "run_sync", "run_streamed"]
A, B, C = "tool_a call-a", "tool_b call-b", "tool_c call-c"


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[dict[str, CrashProgram]]:
    for mode in MODES:
        (tmp_path / mode).mkdir()
    made = {mode: CrashProgram(tmp_path / mode) for mode in MODES}
    try:
        yield made
    finally:
        for program in made.values():
            program.cleanup()


def _sigint_then_resume(program: CrashProgram, mode: str) -> None:
    proc = program.start(mode, "ctrl-c", block="tool_b:mid")
    assert program.wait_started(proc) == "tool_b:mid"
    if mode == "run_streamed":  # the consumer is waiting for the next event
        program.wait_line(proc, "stream.log", "item tool_called call-b", after=0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode != 0, err
    assert "KeyboardInterrupt" in err, err
    run = program.show("ctrl-c")["run"]
    assert (run["status"], run["owner"]) == ("running", None)  # released, not merely orphaned
    assert (program.model_calls(), program.tool_calls()) == ([0, 1], [A, B])

    assert final_output(program.run(mode, "ctrl-c")) == "done: TOOL_A-0, TOOL_B-1, TOOL_C-2"
    assert program.model_calls() == [0, 1, 2, 3]
    assert program.tool_calls() == [A, B, B, C]
    assert program.show("ctrl-c")["run"]["status"] == "completed"


@pytest.mark.slow
def test_ctrl_c_in_each_mode_leaves_the_run_resumable_by_another_process(
    programs: dict[str, CrashProgram],
) -> None:
    with ThreadPoolExecutor(len(MODES)) as pool:  # processes mostly import the SDK: side by side
        outcomes = {mode: pool.submit(_sigint_then_resume, programs[mode], mode) for mode in MODES}
    for outcome in outcomes.values():
        outcome.result(timeout=4 * TIMEOUT)


class Boom(Exception):
    pass


async def _settled(backend: DurableBackend, rid: str) -> RunRecord:
    """The run once it exists and no one holds it, waited for without touching its stream."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        with contextlib.suppress(RunNotFoundError):  # it is opened by its first step
            record = await backend.get_run(rid)
            if record.owner is None:
                return record
        assert asyncio.get_running_loop().time() < deadline, "the run never settled"
        await asyncio.sleep(0.01)


def test_a_stream_that_fails_before_anyone_consumes_it_is_recorded_as_failed(
    tmp_path: Path,
) -> None:
    """The run's own failure counts, not only one a consumer of its stream has already seen."""

    async def go() -> None:
        backend = DurableBackend(LocalEngine(f"sqlite:///{tmp_path / 'runs.db'}"))
        agent = Agent(name="failing", model=ScriptedModel([ModelStep.raise_error(Boom("no"))]))
        with run_id("failed-unread"):
            result = backend.run_streamed(agent, PROMPT)
        record = await _settled(backend, "failed-unread")
        assert (record.status, record.error) == ("failed", "no")
        assert record.error_type is not None
        assert record.error_type.endswith("Boom")
        with pytest.raises(Boom):  # the consumer, later, still gets the SDK's own error
            await _consume(result)
        await backend.engine.dispose()

    asyncio.run(go())


def _looping_agent(name: str) -> Agent[Any]:
    """An agent whose model asks for a tool on every turn, so max_turns ends it."""

    @function_tool
    def again() -> str:
        """Once more."""
        return "more"

    steps = [[function_call("again", {}, call_id=f"c{n}")] for n in range(3)]
    return Agent(name=name, tools=[again], model=ScriptedModel(steps))


@pytest.mark.parametrize("read", [False, True], ids=["unread", "read"])
def test_a_stream_past_max_turns_is_recorded_as_failed_whether_or_not_it_is_read(
    tmp_path: Path, read: bool
) -> None:
    """MaxTurnsExceeded reaches only a consumer of the stream; the run failed either way."""

    async def go() -> None:
        backend = DurableBackend(LocalEngine(f"sqlite:///{tmp_path / 'runs.db'}"))
        with run_id("past-max-turns"):
            result = backend.run_streamed(_looping_agent("looping"), PROMPT, max_turns=2)
        if read:
            with pytest.raises(MaxTurnsExceeded):
                await _consume(result)
        record = await _settled(backend, "past-max-turns")
        assert (record.status, record.error_type, record.error) == (
            "failed",
            "agents.exceptions.MaxTurnsExceeded",
            "Max turns (2) exceeded",
        )
        if not read:
            with pytest.raises(MaxTurnsExceeded):  # a late consumer still gets the SDK's error
                await _consume(result)
        await backend.engine.dispose()

    asyncio.run(go())


def test_an_unread_stream_whose_input_guardrail_trips_is_recorded_as_failed(
    tmp_path: Path,
) -> None:
    @input_guardrail
    def refuse(ctx: Any, agent: Any, input: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info="no", tripwire_triggered=True)

    async def go() -> None:
        backend = DurableBackend(LocalEngine(f"sqlite:///{tmp_path / 'runs.db'}"))
        agent = Agent(
            name="guarded",
            input_guardrails=[refuse],
            model=ScriptedModel([[assistant_message("never")]]),
        )
        with run_id("tripped-unread"):
            result = backend.run_streamed(agent, PROMPT)
        record = await _settled(backend, "tripped-unread")
        assert record.status == "failed"
        assert record.error_type == "agents.exceptions.InputGuardrailTripwireTriggered"
        with pytest.raises(InputGuardrailTripwireTriggered):
            await _consume(result)
        await backend.engine.dispose()

    asyncio.run(go())
