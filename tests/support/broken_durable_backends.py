"""Durable backends that each break one durability guarantee, to prove the profile catches it.

Each is the real durable backend with one defect: a replay that forgets recorded tool outputs
(completed tools run again), one that forgets recorded model responses (the model is asked
again), one that papers over a divergence by starting the run over under a new id, a history
that leaves out the steps in flight, and one that keeps its runs in a new database per process
(nothing survives the kill, yet the resumed result is right: DUR-1 alone cannot tell).
`EXPECTED_FAILURES` names the DUR ids each must fail, and every other one it must pass.

This module is a runplane plugin; tests/conformance/test_durability_meta.py installs it as a
distribution, so the profile's child processes find it by entry point as they would a published
backend.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from agents import Agent, RunResult
from runplane_durable import DurableBackend, ReplayDivergenceError, RunInputMismatchError, run_id
from runplane_durable.engine import open_engine

import runplane
from runplane import RunHistory, RunnerBackend

EXPECTED_FAILURES: dict[str, set[str]] = {
    "durable-reruns-tools": {"DUR-2"},
    # Never replaying a model call, it never compares a request with the recorded one either.
    "durable-repeats-model-calls": {"DUR-3", "DUR-4"},
    "durable-papers-over-divergence": {"DUR-4"},
    "durable-hides-steps-in-flight": {"DUR-5"},
    "durable-forgets-runs": {"DUR-2", "DUR-3", "DUR-4", "DUR-5"},
}

WITHOUT_HISTORY = "durable-without-history"
"""Not a defect of durability but of the interface: every DUR requirement fails, saying why."""


class _ForgetfulSession:
    """A run session whose journal, as replay sees it, lacks the entries of one kind: those
    steps run again, live, and their second recording is dropped (the first one stands)."""

    def __init__(self, inner: Any, forget: str) -> None:
        self._inner = inner
        self.journal = [e for e in inner.journal if e.kind != forget]
        self._forgotten = {(e.kind, e.key) for e in inner.journal if e.kind == forget}

    async def append(self, *, journal: Any = None, **rest: Any) -> None:
        if journal is not None and (journal.kind, journal.key) in self._forgotten:
            return  # recorded already, by the attempt that was killed
        await self._inner.append(journal=journal, **rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ForgetfulEngine:
    """The real engine, except that a reopened run replays without the `forget` entries."""

    def __init__(self, inner: Any, forget: str) -> None:
        self._inner = inner
        self._forget = forget

    async def open_run(self, spec: Any, *, lease_seconds: float) -> Any:
        session = await self._inner.open_run(spec, lease_seconds=lease_seconds)
        return _ForgetfulSession(session, self._forget)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _PapersOver(DurableBackend):
    """A resume the program no longer matches is quietly run as a new run instead."""

    async def _run(self, starting_agent: Agent[Any], input: Any, options: Any, mode: Any) -> Any:
        try:
            return await super()._run(starting_agent, input, options, mode)
        except (ReplayDivergenceError, RunInputMismatchError):
            with run_id():
                result: RunResult = await super()._run(starting_agent, input, options, mode)
                return result


class _FinishedOnly:
    """The real capabilities, but the history shows only the steps whose result is recorded."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.divergence_errors = inner.divergence_errors

    def run_id(self, value: str) -> Any:
        return self._inner.run_id(value)

    async def history(self, value: str) -> RunHistory:
        history: RunHistory = await self._inner.history(value)
        return dataclasses.replace(history, steps=tuple(s for s in history.steps if s.finished))


class _WithoutHistory(DurableBackend):
    """Says it is durable, but its capabilities cannot show a run's history."""

    def durability(self) -> Any:
        inner = super().durability()
        return type("NoHistory", (), {"divergence_errors": inner.divergence_errors})()


class _HidesInFlight(DurableBackend):
    def durability(self) -> Any:
        return _FinishedOnly(super().durability())


def _forgets_runs() -> DurableBackend:
    """A database of its own in every process: a resume finds nothing and starts over."""
    return DurableBackend(open_engine(f"sqlite:///{tempfile.mkdtemp(prefix='forgets-')}/runs.db"))


@runplane.hookimpl
def runplane_backends() -> Mapping[str, Callable[[], RunnerBackend]]:
    return {
        "durable-reruns-tools": lambda: DurableBackend(_ForgetfulEngine(open_engine(), "tool")),  # type: ignore[arg-type]
        "durable-repeats-model-calls": lambda: DurableBackend(
            _ForgetfulEngine(open_engine(), "model")  # type: ignore[arg-type]
        ),
        "durable-papers-over-divergence": _PapersOver,
        "durable-hides-steps-in-flight": _HidesInFlight,
        "durable-forgets-runs": _forgets_runs,
        WITHOUT_HISTORY: _WithoutHistory,
    }
