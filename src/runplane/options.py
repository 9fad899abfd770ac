"""`RunOptions`: everything a run is given besides its agent and input, as one typed record.

The SDK spells these nine arguments out in each of `agents.Runner`'s entry points and hands them
to its `AgentRunner` as a `RunOptions` TypedDict. runplane's base class and runner classes carry
them as this frozen record instead, so a backend takes one parameter rather than nine, and hands
them back to the SDK with `sdk_runner().run(agent, input, **options.as_kwargs())`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, cast

from agents import RunConfig, RunHooks, RunState, Session
from agents.items import TResponseInputItem
from agents.run import DEFAULT_MAX_TURNS
from agents.run import RunOptions as SDKRunOptions
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

__all__ = ["RunInput", "RunOptions"]

RunInput: TypeAlias = str | list[TResponseInputItem] | RunState[TContext]
"""What `agents.Runner` accepts as a run's input: text, input items, or an interrupted run."""


@dataclass(frozen=True)
class RunOptions(Generic[TContext]):
    """The keyword arguments of `agents.Runner.run`, with the SDK's defaults.

    `tests/core/test_protocol.py` checks that the fields are exactly the SDK's `RunOptions` keys and
    `agents.Runner.run`'s parameters after `input`, with the same defaults. Change one with
    `dataclasses.replace(options, run_config=...)`.
    """

    context: TContext | None = None
    max_turns: int | None = DEFAULT_MAX_TURNS
    hooks: RunHooks[TContext] | None = None
    run_config: RunConfig | dict[str, Any] | None = None
    error_handlers: RunErrorHandlers[TContext] | None = None
    previous_response_id: str | None = None
    auto_previous_response_id: bool = False
    conversation_id: str | None = None
    session: Session | None = None

    def as_kwargs(self) -> SDKRunOptions[TContext]:
        """The SDK's own keyword arguments: `**options.as_kwargs()` into any SDK entry point.

        Every field is passed, defaults included, as `agents.Runner` passes them; values are the
        caller's own objects (no copy), so a context or session is shared as the SDK shares it.
        """
        return cast("SDKRunOptions[TContext]", {name: getattr(self, name) for name in _NAMES})


_NAMES = tuple(field.name for field in dataclasses.fields(RunOptions))
