"""The protocol and every runner class keep `agents.Runner`'s exact signatures.

If an SDK upgrade changes a parameter, default, keyword-only marker or return type, these fail
and name the difference, instead of runplane silently drifting from the SDK.
"""

from __future__ import annotations

import inspect

import agents
import pytest
from agents.items import TResponseInputItem
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

import runplane
from runplane import RunnerBackend

METHODS = ("run", "run_sync", "run_streamed")
# runplane.protocol imports the SDK's types for type checkers only (so the CLI starts without the
# SDK): its annotations are evaluated against the SDK's own names.
SDK_NAMES = {
    **vars(agents),
    "TResponseInputItem": TResponseInputItem,
    "TContext": TContext,
    "RunErrorHandlers": RunErrorHandlers,
}


def _signature(obj: object, *, drop_self: bool) -> inspect.Signature:
    sig = inspect.signature(obj, eval_str=True, locals=SDK_NAMES)  # type: ignore[arg-type]
    if drop_self:
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    return sig


def _diff(expected: inspect.Signature, actual: inspect.Signature) -> str:
    lines = []
    for name in dict.fromkeys([*expected.parameters, *actual.parameters]):
        e, a = expected.parameters.get(name), actual.parameters.get(name)
        if e != a:
            lines.append(f"  {name}: SDK {e} != runplane {a}")
    if expected.return_annotation != actual.return_annotation:
        lines.append(f"  return: SDK {expected.return_annotation} != {actual.return_annotation}")
    order = list(expected.parameters) == list(actual.parameters)
    return "\n".join(lines) + ("" if order else "\n  parameter order differs")


@pytest.mark.parametrize("method", METHODS)
def test_protocol_matches_sdk_runner(method: str) -> None:
    expected = _signature(getattr(agents.Runner, method), drop_self=False)
    actual = _signature(getattr(RunnerBackend, method), drop_self=True)
    assert expected == actual, f"RunnerBackend.{method} drifted from agents.Runner:\n" + _diff(
        expected, actual
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("runner_class", [runplane.Runner, runplane.runner("openai")])
def test_runner_classes_match_sdk_runner(runner_class: type, method: str) -> None:
    expected = _signature(getattr(agents.Runner, method), drop_self=False)
    actual = _signature(getattr(runner_class, method), drop_self=False)
    assert expected == actual, _diff(expected, actual)


def test_coroutine_shape_matches_sdk() -> None:
    for cls in (RunnerBackend, runplane.Runner):
        assert inspect.iscoroutinefunction(cls.run)
        assert not inspect.iscoroutinefunction(cls.run_sync)
        assert not inspect.iscoroutinefunction(cls.run_streamed)


def test_direct_backend_satisfies_protocol() -> None:
    from runplane_openai import OpenAIBackend

    backend = OpenAIBackend()
    assert isinstance(backend, RunnerBackend)
    for method in METHODS:
        expected = _signature(getattr(RunnerBackend, method), drop_self=True)
        assert _signature(getattr(backend, method), drop_self=False) == expected
