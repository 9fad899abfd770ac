"""runplane's direct backend: `from runplane_openai import Runner` swaps `agents.Runner`.

The names are imported on first use: the `runplane` entry point imports this package, and a
command that runs no agent must not import the Agents SDK through it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runplane import BackendRunner

    from .backend import ChatCompletionsHistoryError, OpenAIBackend
    from .settings import OpenAISettings, SettingsError

    Runner: type[BackendRunner]

__all__ = [
    "ChatCompletionsHistoryError",
    "OpenAIBackend",
    "OpenAISettings",
    "Runner",
    "SettingsError",
]

_LAZY = {
    "ChatCompletionsHistoryError": "backend",
    "OpenAIBackend": "backend",
    "OpenAISettings": "settings",
    "SettingsError": "settings",
}


def __getattr__(name: str) -> Any:
    if name == "Runner":
        import runplane

        value: Any = runplane.runner("openai", check=False)
    elif name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
