"""`RunnerBackendBase`: `agents.Runner`'s three signatures, declared once for backends to inherit.

The SDK's entry points take ten parameters each, with defaults, keyword-only markers and, for
`run_streamed`, a legacy positional order. A backend that subclasses this base gets them exactly
(`tests/core/test_protocol.py` compares them with the SDK's) and implements two methods that take
the arguments as one `RunOptions` record:

    async def _run(self, starting_agent, input, options, mode) -> RunResult
    def _run_streamed(self, starting_agent, input, options) -> RunResultStreaming

`run_sync` comes free: the SDK's own `run_sync` machinery (`SyncDriver`) drives `_run` with mode
"run_sync"; override `_run_sync` to do more. The `RunnerBackend` protocol stays the contract: a
backend may still write the three methods out by hand. runplane's runner classes
(`runplane.facade`) reuse these very methods as classmethods, so the block exists once.
"""

from __future__ import annotations

import abc
import inspect
from typing import Any, Literal, cast

from agents import Agent, RunConfig, RunHooks, RunResult, RunResultStreaming, RunState, Session
from agents.items import TResponseInputItem
from agents.run import DEFAULT_MAX_TURNS
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

from . import _sdk
from .options import RunInput, RunOptions
from .sync import SyncDriver

__all__ = ["ENTRY_POINTS", "RunMode", "RunnerBackendBase"]

RunMode = Literal["run", "run_sync"]
"""The entry point a `_run` call was made through: `await run(...)`, or `run_sync(...)`."""

ENTRY_POINTS = ("run", "run_sync", "run_streamed")


class RunnerBackendBase(abc.ABC):
    """A `RunnerBackend` whose entry points hand their arguments on as one `RunOptions`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_overrides(cls)

    # -- the SDK's three entry points, exactly as agents.Runner declares them ------------------

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
    ) -> RunResult:
        options = RunOptions(
            context=context,
            max_turns=max_turns,
            hooks=hooks,
            run_config=run_config,
            error_handlers=error_handlers,
            previous_response_id=previous_response_id,
            auto_previous_response_id=auto_previous_response_id,
            conversation_id=conversation_id,
            session=session,
        )
        try:
            return await self._run(starting_agent, input, options, "run")
        except BaseException as exc:
            if not _sdk.is_data_redacted(exc):
                raise
            _sdk.detach_redacted_traceback(exc)
            redacted = exc
        # As agents.Runner does: re-raise from a frame that holds none of the run's data.
        starting_agent = input = context = hooks = run_config = options = cast(Any, None)
        error_handlers = session = previous_response_id = conversation_id = None
        _sdk.raise_redacted(redacted)

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
    ) -> RunResult:
        options = RunOptions(
            context=context,
            max_turns=max_turns,
            hooks=hooks,
            run_config=run_config,
            error_handlers=error_handlers,
            previous_response_id=previous_response_id,
            auto_previous_response_id=auto_previous_response_id,
            conversation_id=conversation_id,
            session=session,
        )
        try:
            return self._run_sync(starting_agent, input, options)
        except BaseException as exc:
            if not _sdk.is_data_redacted(exc):
                raise
            _sdk.detach_redacted_traceback(exc)
            redacted = exc
        # As agents.Runner does: re-raise from a frame that holds none of the run's data.
        starting_agent = input = context = hooks = run_config = options = cast(Any, None)
        error_handlers = session = previous_response_id = conversation_id = None
        _sdk.raise_redacted(redacted)

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
    ) -> RunResultStreaming:
        options = RunOptions(
            context=context,
            max_turns=max_turns,
            hooks=hooks,
            run_config=run_config,
            error_handlers=error_handlers,
            previous_response_id=previous_response_id,
            auto_previous_response_id=auto_previous_response_id,
            conversation_id=conversation_id,
            session=session,
        )
        return self._run_streamed(starting_agent, input, options)

    # -- what a backend implements --------------------------------------------------------------

    @abc.abstractmethod
    async def _run(
        self,
        starting_agent: Agent[TContext],
        input: RunInput[TContext],
        options: RunOptions[TContext],
        mode: RunMode,
    ) -> RunResult:
        """Run to the end; `mode` says whether the caller used `run` or `run_sync`."""

    def _run_sync(
        self,
        starting_agent: Agent[TContext],
        input: RunInput[TContext],
        options: RunOptions[TContext],
    ) -> RunResult:
        """`_run(..., "run_sync")` on the SDK's own `run_sync` machinery.

        That machinery keeps the thread's default event loop open between calls (sessions and
        pooled HTTP connections stay bound to it) and cancels the run cleanly on Ctrl-C;
        `asyncio.run` would close the loop and break the next call.
        """

        async def run(agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
            return await self._run(agent, input, RunOptions(**kwargs), "run_sync")

        return SyncDriver(run).run_sync(starting_agent, input, **options.as_kwargs())

    @abc.abstractmethod
    def _run_streamed(
        self,
        starting_agent: Agent[TContext],
        input: RunInput[TContext],
        options: RunOptions[TContext],
    ) -> RunResultStreaming:
        """Start the run and return its `RunResultStreaming` at once, as the SDK does."""


def _shape(function: Any) -> list[tuple[str, Any, Any]]:
    """Names, kinds and defaults: what a caller relies on (annotations may be unevaluated)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def _check_overrides(cls: type) -> None:
    """Refuse, at class creation, a subclass whose entry point no longer takes the SDK's arguments.

    A subclass may override `run` (to wrap `super().run`), but with other parameters or defaults
    it would no longer be a drop-in `agents.Runner`: implement `_run` and friends instead.
    """
    for name in ENTRY_POINTS:
        override = cls.__dict__.get(name)
        if override is None:
            continue
        expected, actual = _shape(getattr(RunnerBackendBase, name)), _shape(override)
        if actual != expected:
            wrong = next(
                (f"{a[0]!r}" for e, a in zip(expected, actual, strict=False) if e != a),
                "the number of parameters",
            )
            raise TypeError(
                f"{cls.__qualname__}.{name} overrides RunnerBackendBase.{name} with another "
                f"signature (it differs at {wrong}); agents.Runner.{name}'s parameters, defaults "
                f"and keyword-only markers must stay as they are. Implement `_{name}` instead "
                "(it gets the arguments as one RunOptions), or keep the signature exactly."
            )
