"""pytest plugin that runs the SDK's own tests with `agents.Runner` served by runplane.

Loaded with `-p swap_plugin` (run.py puts this directory on PYTHONPATH). Two modes:

* `--sdk-swap=class`: every `agents.*` module attribute bound to the SDK's `Runner` class
  (`agents.Runner`, `agents.run.Runner`, ...) becomes `runplane.runner(backend)`, before any test
  module is imported, so `from agents import Runner` in a test gets ours and so do the SDK's own
  nested runs (`Agent.as_tool` imports `Runner` from `agents.run` at call time).
* `--sdk-swap=install`: `runplane.install(backend)`, the process-wide path. The SDK's conftest
  resets the default runner before every test, so the plugin re-installs after each fixture.

What is deliberately left alone: `AgentRunner`, `DEFAULT_AGENT_RUNNER` and
`set_/get_default_agent_runner`. The direct backend reaches the SDK's loop through
`runplane.sdk_runner()`, i.e. through those, so tests that replace the default runner or
monkeypatch `AgentRunner` must keep seeing their replacement behind runplane.

A runplane observer counts the runs that went through runplane, per test, and writes them with
`--sdk-swap-report`, so a swap that silently did nothing cannot pass as parity.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

import runplane

MODES = ("class", "install")
_OBSERVER_NAME = "runplane-sdk-swap-observer"


class _Swap:
    """What the plugin changed, and the runs it saw going through runplane."""

    def __init__(self, mode: str, backend: str) -> None:
        self.mode = mode
        self.backend = backend
        self.patched: list[str] = []
        self.reinstalls = 0
        self.runs: Counter[str] = Counter()
        self.tests_with_runs: set[str] = set()
        self.current_test: str | None = None

    @runplane.hookimpl
    def runplane_run_started(self, run: runplane.RunInfo) -> None:
        # Only this hook: observers of stream events or finishes would make the facade wrap
        # `stream_events`, and the swapped run must exercise the unobserved path users get.
        self.runs[run.mode] += 1
        if self.current_test is not None:
            self.tests_with_runs.add(self.current_test)

    def apply(self) -> None:
        import agents.run

        runplane.register_plugin(self, name=_OBSERVER_NAME)
        if self.mode == "class":
            self._swap_class(agents.run.Runner)
        else:
            runplane.install(self.backend)

    def _swap_class(self, original: type) -> None:
        ours = runplane.runner(self.backend)
        for name, module in sorted(sys.modules.items()):
            if name != "agents" and not name.startswith("agents."):
                continue
            if getattr(module, "Runner", None) is original:
                module.Runner = ours  # type: ignore[attr-defined]
                self.patched.append(f"{name}.Runner")
        import agents

        seen: tuple[object, ...] = (agents.Runner, agents.run.Runner)
        if any(runner is not ours for runner in seen):
            raise RuntimeError("runplane SDK swap: agents.Runner is still the SDK's class")

    def ensure_installed(self) -> None:
        """Put runplane back in the default-runner slot after a test or fixture reset it."""
        if self.mode == "install" and runplane.installed() != self.backend:
            runplane.install(self.backend)
            self.reinstalls += 1

    def report(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "backend": self.backend,
            "patched": self.patched,
            "reinstalls": self.reinstalls,
            "runs": dict(self.runs),
            "tests_with_runs": sorted(self.tests_with_runs),
        }


_swap: _Swap | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("runplane-sdk-swap")
    group.addoption("--sdk-swap", choices=MODES, default="class", help="how to swap")
    group.addoption("--sdk-swap-backend", default="openai", help="runplane backend name")
    group.addoption("--sdk-swap-report", default=None, help="write a JSON report here")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Swap before the SDK's conftest and test modules import anything from `agents`."""
    global _swap
    ns = early_config.known_args_namespace
    _swap = _Swap(ns.sdk_swap, ns.sdk_swap_backend)
    _swap.apply()


def pytest_report_header(config: pytest.Config) -> str:
    assert _swap is not None
    what = ", ".join(_swap.patched) if _swap.mode == "class" else "runplane.install"
    return f"runplane swap: mode={_swap.mode} backend={_swap.backend} ({what})"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    assert _swap is not None
    _swap.current_test = item.nodeid
    try:
        return (yield)
    finally:
        _swap.current_test = None


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Generator[None, object, object]:
    assert _swap is not None
    try:
        return (yield)
    finally:
        _swap.ensure_installed()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    assert _swap is not None
    _swap.ensure_installed()


def pytest_sessionfinish(session: pytest.Session) -> None:
    assert _swap is not None
    path = session.config.getoption("--sdk-swap-report")
    if path:
        Path(path).write_text(json.dumps(_swap.report(), indent=1))
