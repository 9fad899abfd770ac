"""The protocol, the backend base class, every runner class and every backend keep
`agents.Runner`'s exact signatures.

If an SDK upgrade changes a parameter, default, keyword-only marker or return type, these fail
and name the difference, instead of runplane silently drifting from the SDK. `RunOptions` is
checked against the same signature, so the record the base class hands on cannot drift either.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from pathlib import Path
from typing import Any

import agents
import pytest
from agents import RunResult, RunResultStreaming
from agents.items import TResponseInputItem
from agents.run import RunOptions as SDKRunOptions
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

import runplane
from runplane import RunnerBackend, RunnerBackendBase, RunOptions

THIRD_PARTY_SRC = Path(__file__).parents[1] / "third_party_backend" / "src"

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


def _backend_classes() -> dict[str, type]:
    from runplane_durable import DurableBackend
    from runplane_openai import OpenAIBackend

    sys.path.insert(0, str(THIRD_PARTY_SRC))  # the third party's example, from its source tree
    try:
        from runplane_deadline.backend import (  # type: ignore[import-not-found]
            DeadlineBackend,
        )
    finally:
        sys.path.remove(str(THIRD_PARTY_SRC))
    return {
        "RunnerBackendBase": RunnerBackendBase,
        "OpenAIBackend": OpenAIBackend,
        "DurableBackend": DurableBackend,
        "DeadlineBackend": DeadlineBackend,
    }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "cls", ["RunnerBackendBase", "OpenAIBackend", "DurableBackend", "DeadlineBackend"]
)
def test_base_class_and_every_backend_match_sdk_runner(cls: str, method: str) -> None:
    backend = _backend_classes()[cls]
    expected = _signature(getattr(agents.Runner, method), drop_self=False)
    actual = _signature(getattr(backend, method), drop_self=True)
    assert expected == actual, f"{cls}.{method} drifted from agents.Runner:\n" + _diff(
        expected, actual
    )
    assert inspect.iscoroutinefunction(getattr(backend, method)) == (method == "run")


def test_every_backend_is_built_on_the_base_class() -> None:
    """So none of them writes the signature block out again (the base class owns it)."""
    for name, cls in _backend_classes().items():
        assert issubclass(cls, RunnerBackendBase), name


def test_a_subclass_that_changes_an_entry_points_signature_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Drifted.run overrides .* differs at 'max_turns'"):

        class Drifted(RunnerBackendBase):
            async def run(  # type: ignore[override]
                self, starting_agent: Any, input: Any, *, max_turns: int = 3, **kwargs: Any
            ) -> RunResult:
                raise AssertionError

    with pytest.raises(TypeError, match=r"Shortened.run_streamed .* the number of parameters"):

        class Shortened(RunnerBackendBase):
            def run_streamed(  # type: ignore[override]
                self, starting_agent: Any, input: Any
            ) -> RunResultStreaming:
                raise AssertionError


def test_a_subclass_may_wrap_an_entry_point_keeping_its_signature() -> None:
    class Wrapping(RunnerBackendBase):
        @functools.wraps(RunnerBackendBase.run_sync)
        def run_sync(self, *args: Any, **kwargs: Any) -> RunResult:  # type: ignore[override]
            return super().run_sync(*args, **kwargs)

    expected = _signature(agents.Runner.run_sync, drop_self=False)
    assert _signature(Wrapping.run_sync, drop_self=True) == expected


def test_run_options_are_the_sdks_keyword_arguments_with_its_defaults() -> None:
    run = inspect.signature(agents.Runner.run)
    sdk_keywords = {
        name: p.default for name, p in list(run.parameters.items())[2:]
    }  # after starting_agent and input
    fields = {f.name: f.default for f in dataclasses.fields(RunOptions)}
    assert fields == sdk_keywords
    assert set(typing.get_type_hints(SDKRunOptions)) == set(fields)


def test_run_options_hand_the_callers_objects_on_untouched() -> None:
    context, session, hooks = object(), object(), agents.RunHooks[Any]()
    options = RunOptions[Any](context=context, session=session, hooks=hooks, max_turns=None)  # type: ignore[arg-type]
    kwargs = options.as_kwargs()
    assert kwargs["context"] is context
    assert kwargs["session"] is session
    assert kwargs["hooks"] is hooks
    assert kwargs["max_turns"] is None
    assert list(kwargs) == [f.name for f in dataclasses.fields(RunOptions)]


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
