"""The contract every backend implements: `agents.Runner`'s three entry points, as instance methods.

The parameters, defaults, keyword-only markers and return types are copied from the pinned SDK on
purpose: `tests/core/test_protocol.py` compares them with `inspect.signature`, so an SDK upgrade
that changes `agents.Runner` fails loudly instead of drifting. The SDK's types are imported for type
checkers only: the registry and the CLI import this module, and a command that runs no agent must
not pay for importing the SDK (`max_turns`' default is the SDK's DEFAULT_MAX_TURNS, checked by
that same test).

This is the contract, and the one place besides `runplane.base.RunnerBackendBase` where the
signatures are written out: a backend may implement it by hand, or subclass that base class,
which carries them and hands the arguments on as one `runplane.RunOptions`.

One method is optional, so the facade asks for it with `reserved_run_id(backend)`:
`reserve_run_id()` returns a context manager yielding the id the run started inside it will have,
which observers then see as `RunInfo.run_id`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from agents import (
        Agent,
        RunConfig,
        RunHooks,
        RunResult,
        RunResultStreaming,
        RunState,
        Session,
    )
    from agents.items import TResponseInputItem
    from agents.run_context import TContext
    from agents.run_error_handlers import RunErrorHandlers

__all__ = ["DEFAULT_MAX_TURNS", "RunIdReserving", "RunnerBackend", "reserved_run_id"]

DEFAULT_MAX_TURNS = 10  # agents.run.DEFAULT_MAX_TURNS of the pinned SDK


@runtime_checkable
class RunnerBackend(Protocol):
    """An execution backend: where and how a run executes, never what the program sees."""

    async def run(
        self,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        *,
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        error_handlers: RunErrorHandlers[TContext] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
    ) -> RunResult: ...

    def run_sync(
        self,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        *,
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        error_handlers: RunErrorHandlers[TContext] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
    ) -> RunResult: ...

    def run_streamed(
        self,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
        *,
        error_handlers: RunErrorHandlers[TContext] | None = None,
    ) -> RunResultStreaming: ...


@runtime_checkable
class RunIdReserving(Protocol):
    """The optional part of the contract: a backend that names its runs says so up front.

    `reserve_run_id(input)` is entered by the facade just before it starts observing a run and
    left once the backend's entry point has returned (for `run_streamed`, once the stream object
    exists). It yields the id the run started inside it will have, so observers and the backend's
    own records (the durable journal) name the run alike; it must not start anything. `input` is
    the run's input: a `RunState` may continue a run the backend named before, under its id. A
    backend whose `reserve_run_id()` takes no input is called without it.
    """

    def reserve_run_id(self, input: Any = None) -> contextlib.AbstractContextManager[str]: ...


@contextlib.contextmanager
def reserved_run_id(backend: object, input: Any = None) -> Iterator[str | None]:
    """The backend's id for the run about to start inside this block, or None if it names none."""
    if not isinstance(backend, RunIdReserving):
        yield None
        return
    reserve = backend.reserve_run_id
    with reserve(input) if _takes_input(type(backend)) else reserve() as run_id:
        yield run_id


@functools.cache
def _takes_input(cls: type[RunIdReserving]) -> bool:
    """Whether `cls.reserve_run_id` takes the run's input (read once per backend class)."""
    try:
        inspect.signature(cls.reserve_run_id).bind(None, None)  # (self, input)
    except TypeError:
        return False
    return True
