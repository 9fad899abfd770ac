"""The host context: a host application's multi-turn conversation with an agent, on any backend.

    from runplane.host import HostContext, ModelOptions

    async with HostContext(system_prompt="You are ...", tools=[...],
                           options=ModelOptions(model="gpt-4.1-mini")) as ctx:
        turn = await ctx.run("Hello")           # streamed; events to on_event
        turn = await ctx.run("And then?")       # the history holds, on every API

Names are imported on first use, so that `runplane chat --help` and the CLI do not import the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .authority import authority_text, load_authority
    from .context import EventHandler, HostContext
    from .options import DEFAULT_MODEL, HostSetupError, ModelOptions
    from .sessions import SupportsConversations, SupportsConversationTurns, UnfinishedTurn
    from .turn import TurnResult

__all__ = [
    "DEFAULT_MODEL",
    "EventHandler",
    "HostContext",
    "HostSetupError",
    "ModelOptions",
    "SupportsConversationTurns",
    "SupportsConversations",
    "TurnResult",
    "UnfinishedTurn",
    "authority_text",
    "load_authority",
]

_LAZY = {
    "authority_text": "authority",
    "load_authority": "authority",
    "EventHandler": "context",
    "HostContext": "context",
    "DEFAULT_MODEL": "options",
    "HostSetupError": "options",
    "ModelOptions": "options",
    "SupportsConversationTurns": "sessions",
    "SupportsConversations": "sessions",
    "UnfinishedTurn": "sessions",
    "TurnResult": "turn",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
