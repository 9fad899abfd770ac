"""Where model calls go: OpenAI or a compatible endpoint. Owned by core since every backend's runs
use it (`runplane.endpoint`); kept here so `runplane_openai.OpenAISettings` imports still work."""

from __future__ import annotations

from runplane.endpoint import (
    ENV_API,
    ENV_API_KEY,
    ENV_BASE_URL,
    NO_KEY,
    Api,
    OpenAISettings,
    SettingsError,
)

__all__ = [
    "ENV_API",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "NO_KEY",
    "Api",
    "OpenAISettings",
    "SettingsError",
]
