"""runplane's direct backend: `from runplane_openai import Runner` swaps `agents.Runner`."""

from __future__ import annotations

import runplane

from .backend import ChatCompletionsHistoryError, OpenAIBackend
from .settings import OpenAISettings, SettingsError

__all__ = [
    "ChatCompletionsHistoryError",
    "OpenAIBackend",
    "OpenAISettings",
    "Runner",
    "SettingsError",
]

Runner = runplane.runner("openai", check=False)
