"""`runplane.RunnerBackendBase`: the SDK's three entry points, forwarding one `RunOptions`.

Also the runner classes built on it: `run` and `run_sync` share one body, and a redacted error
leaves no frame holding the run's data, as `agents.Runner` guarantees.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

import pytest
from agents import Agent, RunHooks, RunResult, RunResultStreaming, SQLiteSession
from agents.exceptions import UserError
from agents.testing import ScriptedModel, assistant_message

import runplane
from runplane import RunnerBackendBase, RunOptions
from runplane.base import RunMode
from runplane.facade import _never_suspending


def _agent(reply: str = "ok") -> Agent[Any]:
    return Agent(name="a", model=ScriptedModel([[assistant_message(reply)]]))


class Recording(RunnerBackendBase):
    """The SDK's loop, noting how each call reached it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, RunOptions[Any]]] = []

    async def _run(
        self, agent: Agent[Any], input: Any, options: RunOptions[Any], mode: RunMode
    ) -> RunResult:
        self.calls.append((mode, options))
        return await runplane.sdk_runner().run(agent, input, **options.as_kwargs())

    def _run_streamed(
        self, agent: Agent[Any], input: Any, options: RunOptions[Any]
    ) -> RunResultStreaming:
        self.calls.append(("run_streamed", options))
        return runplane.sdk_runner().run_streamed(agent, input, **options.as_kwargs())


def test_run_forwards_every_argument_as_one_record() -> None:
    backend = Recording()
    session = SQLiteSession("s")
    context = {"user": 1}
    result = asyncio.run(backend.run(_agent(), "x", context=context, max_turns=3, session=session))
    assert result.final_output == "ok"
    [(mode, options)] = backend.calls
    assert mode == "run"
    assert options == RunOptions(context=context, max_turns=3, session=session)
    assert options.context is context
    assert options.session is session


def test_run_sync_drives_run_on_the_sdks_machinery_keeping_the_default_loop() -> None:
    """Twice in a row: the SDK keeps the thread's default loop; asyncio.run would close it."""
    backend = Recording()
    loops: list[asyncio.AbstractEventLoop] = []

    class Hooks(RunHooks[Any]):
        async def on_agent_start(self, context: Any, agent: Any) -> None:
            loops.append(asyncio.get_running_loop())

    assert backend.run_sync(_agent("one"), "1", hooks=Hooks()).final_output == "one"
    assert backend.run_sync(_agent("two"), "2", hooks=Hooks(), max_turns=None).final_output == "two"
    assert [mode for mode, _ in backend.calls] == ["run_sync", "run_sync"]
    assert backend.calls[1][1].max_turns is None
    assert loops[0] is loops[1]
    assert not loops[0].is_closed()


def test_run_streamed_takes_the_legacy_positional_arguments() -> None:
    backend = Recording()
    context = object()

    async def main() -> Any:
        result = backend.run_streamed(_agent(), "x", context, 4, None, None, None, True, None)
        async for _ in result.stream_events():
            pass
        return result.final_output

    # previous_response_id stays None, auto_previous_response_id is the 8th positional argument
    assert asyncio.run(main()) == "ok"
    [(mode, options)] = backend.calls
    assert mode == "run_streamed"
    assert options.context is context
    assert options.max_turns == 4
    assert options.auto_previous_response_id is True
    assert options.previous_response_id is None


def test_a_subclass_missing_a_method_to_implement_says_which() -> None:
    class Incomplete(RunnerBackendBase):
        async def _run(
            self, agent: Agent[Any], input: Any, options: RunOptions[Any], mode: RunMode
        ) -> RunResult:
            raise AssertionError

    with pytest.raises(TypeError, match="_run_streamed"):
        Incomplete()  # type: ignore[abstract]


def _redacted_error() -> UserError:
    from agents.exceptions import _mark_error_data_redacted  # the SDK's marker, for the test

    error = UserError("bad input (details redacted)")
    _mark_error_data_redacted(error)
    return error


SECRET = "secret input 7f3a"


class Redacting(Recording):
    async def _run(
        self, agent: Agent[Any], input: Any, options: RunOptions[Any], mode: RunMode
    ) -> RunResult:
        raise _redacted_error()


def _frames_hold_the_secret(error: BaseException) -> list[str]:
    held = []
    for frame, _ in traceback.walk_tb(error.__traceback__):
        for name, value in frame.f_locals.items():
            if value == SECRET or (isinstance(value, RunOptions) and value.context == SECRET):
                held.append(f"{frame.f_code.co_name}: {name}")
    return held


def _register(backend: Any) -> runplane.Registry:
    class Plugin:
        @runplane.hookimpl
        def runplane_backends(self) -> dict[str, Any]:
            return {"redacting": lambda: backend}

    registry = runplane.Registry()
    registry.register(Plugin(), name="redacting-plugin")
    return registry


@pytest.mark.parametrize("through", ["backend", "runner class"])
@pytest.mark.parametrize("mode", ["run", "run_sync"])
def test_a_redacted_error_leaves_no_frame_holding_the_runs_data(through: str, mode: str) -> None:
    backend = Redacting()
    runner: Any = (
        backend
        if through == "backend"
        else runplane.runner("redacting", registry=_register(backend))
    )

    def call() -> Any:
        if mode == "run":
            return asyncio.run(runner.run(_agent(), SECRET, context=SECRET))
        return runner.run_sync(_agent(), SECRET, context=SECRET)

    with pytest.raises(UserError) as caught:
        call()
    assert _frames_hold_the_secret(caught.value) == []
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None


def test_an_error_that_is_not_redacted_keeps_its_traceback() -> None:
    class Failing(Recording):
        async def _run(
            self, agent: Agent[Any], input: Any, options: RunOptions[Any], mode: RunMode
        ) -> RunResult:
            raise ValueError("plain")

    with pytest.raises(ValueError, match="plain") as caught:
        Failing().run_sync(_agent(), SECRET)
    assert "_run" in [
        frame.f_code.co_name for frame, _ in traceback.walk_tb(caught.value.__traceback__)
    ]


def test_the_runner_classes_sync_path_refuses_to_suspend() -> None:
    """`run_sync` drives the shared body without a loop; an await there is a bug, said loudly."""

    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="run_sync path awaited"):
        _never_suspending(suspends())


def test_the_runner_classes_run_and_run_sync_reach_the_backends_own_entry_point() -> None:
    backend = Recording()
    runner = runplane.runner("redacting", registry=_register(backend))
    assert runner.run_sync(_agent("sync"), "x", max_turns=2).final_output == "sync"
    assert asyncio.run(runner.run(_agent("async"), "x")).final_output == "async"
    assert [mode for mode, _ in backend.calls] == ["run_sync", "run"]
    assert backend.calls[0][1].max_turns == 2
