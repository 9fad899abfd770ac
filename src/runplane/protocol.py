"""The contract every backend implements: `agents.Runner`'s three entry points, as instance methods.

The parameters, defaults, keyword-only markers and return types are copied from the pinned SDK on
purpose: `tests/test_protocol.py` compares them with `inspect.signature`, so an SDK upgrade that
changes `agents.Runner` fails loudly instead of drifting.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from agents import Agent, RunConfig, RunHooks, RunResult, RunResultStreaming, RunState, Session
from agents.items import TResponseInputItem
from agents.run import DEFAULT_MAX_TURNS
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

__all__ = ["RunnerBackend"]


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
