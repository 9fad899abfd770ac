"""The optional durability contract: what a backend whose runs survive a crash offers to prove it.

A durable backend gives every run an id, resumes an unfinished run when the same id runs again
(recorded steps replayed, never repeated), and refuses a resume whose program changed. The
conformance suite's durability profile (`--runplane-durable`, docs/conformance.md) checks exactly
that, and needs no more of a backend than this module's protocol: run under an id, read a run's
history in one shape, and name the exceptions that report a changed program. The backend's own
extras (its records, its journal, its CLI) stay its own.

A backend opts in with one method, `durability()`, returning a `DurableCapabilities`; the suite
asks for it with `durability_of(backend)`, which is None for a backend that offers none. No SDK
import: the records here are plain data.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "DurableCapabilities",
    "RunHistory",
    "RunStep",
    "SupportsDurability",
    "durability_of",
]

StepKind = Literal["model_call", "tool_call"]


@dataclass(frozen=True)
class RunStep:
    """One step of a run, as its backend recorded it.

    `turn` is the model call the step is (1 for the run's first model call) or, for a tool call,
    the model call that asked for it. `name` is the agent's name for a model call and the tool's
    for a tool call; `call_id` is the model's id of a tool call (None for a model call).
    `finished` says the step's result (the model's response, the tool's output) is recorded: a
    resume takes it from the record and does not run the step again. A tool call that was asked
    for but whose output is not recorded (it was running when the process died) is unfinished.
    """

    kind: StepKind
    turn: int
    name: str
    call_id: str | None = None
    finished: bool = True


@dataclass(frozen=True)
class RunHistory:
    """A run's recorded steps in the order the run took them, and whether it is over.

    Order: each model call, then the tool calls it asked for (in the order it asked), then the
    next model call. `finished` is true once the run's outcome is recorded (completed, failed,
    cancelled, or waiting for an approval): running its id again replays, it does not continue.
    """

    run_id: str
    steps: tuple[RunStep, ...]
    finished: bool


@runtime_checkable
class DurableCapabilities(Protocol):
    """What a durable backend offers a program (and the durability profile) beyond the SDK's API.

    - `run_id(id)`: a context manager; a run started inside it (with the backend's `run`,
      `run_sync` or `run_streamed`) has that id. A new id starts a new run; the id of an
      unfinished run resumes it from its record (the agent, tools and input passed again), and
      the id of a finished run returns its result.
    - `history(id)`: the run's steps (`RunHistory`), readable from any process, also while the
      run is unfinished after its process was killed.
    - `divergence_errors`: the exception types a resume raises when the program differs from the
      one the run recorded (other instructions, tools, model settings or input) instead of
      mixing two histories.
    """

    @property
    def divergence_errors(self) -> tuple[type[Exception], ...]: ...

    def run_id(self, run_id: str) -> contextlib.AbstractContextManager[object]: ...

    async def history(self, run_id: str) -> RunHistory: ...


@runtime_checkable
class SupportsDurability(Protocol):
    """A backend that is durable says so with one method (see `DurableCapabilities`)."""

    def durability(self) -> DurableCapabilities: ...


def durability_of(backend: object) -> DurableCapabilities | None:
    """The backend's durability capabilities, or None if it offers none (it is not durable)."""
    if not isinstance(backend, SupportsDurability):
        return None
    return backend.durability()
