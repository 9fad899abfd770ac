"""PARITY: on generated scripts, the backend is indistinguishable from the SDK's own runner.

Each example is built twice from the same `Script` (fresh agents, model and context each time) and
run once on a fresh `agents.run.AgentRunner` and once on the backend, in the same mode. What the
program can observe must be equal: the outcome (final output, or exception type and message), the
last agent, the kinds and order of `new_items`, `to_input_list()`, the usage totals, what the model
was sent on every call and, for run_streamed, the stream events.
"""

from __future__ import annotations

from agents.stream_events import StreamEvent

from runplane import BackendRunner

from ._scripts import Observed, Script, build, observe, over_scripts
from ._support import AnyRunner, Execution, Mode, execute, reference, requirement
from .plugin import ConformanceSettings


def _observe(runner: AnyRunner, mode: Mode, script: Script, timeout: float) -> Observed:
    built = build(script)
    events: list[StreamEvent] = []
    execution: Execution | None = None
    error: Exception | None = None
    try:
        execution = execute(
            runner,
            mode,
            built.agent,
            built.input,
            timeout=timeout,
            events=events,
            context=built.context,
            **built.kwargs,
        )
    except Exception as exc:
        error = exc
    return observe(built, execution, error, events)


def _check(backend: type[BackendRunner], mode: Mode, conf: ConformanceSettings) -> None:

    def check(script: Script) -> None:
        expected = _observe(reference(), mode, script, conf.timeout)
        got = _observe(backend, mode, script, conf.timeout)
        assert got == expected, f"{mode} on the backend differs from the SDK's runner"

    over_scripts(check, conf.parity_examples)


@requirement("PARITY-1")
def test_run_matches_sdk(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    _check(runplane_backend, "run", runplane_settings)


@requirement("PARITY-2")
def test_run_sync_matches_sdk(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    _check(runplane_backend, "run_sync", runplane_settings)


@requirement("PARITY-3")
def test_run_streamed_matches_sdk(
    runplane_backend: type[BackendRunner], runplane_settings: ConformanceSettings
) -> None:
    _check(runplane_backend, "run_streamed", runplane_settings)
