"""Where the direct backend sends model calls: OpenAI, or any OpenAI-compatible endpoint."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from agents.exceptions import UserError
from agents.models.multi_provider import MultiProvider

__all__ = ["ENV_API", "ENV_API_KEY", "ENV_BASE_URL", "Api", "OpenAISettings", "SettingsError"]

ENV_BASE_URL = "RUNPLANE_OPENAI_BASE_URL"
ENV_API_KEY = "RUNPLANE_OPENAI_API_KEY"
ENV_API = "RUNPLANE_OPENAI_API"

NO_KEY = "runplane-no-key"

Api = Literal["responses", "chat_completions"]
_APIS: tuple[Api, ...] = ("responses", "chat_completions")


class SettingsError(UserError):
    """A RUNPLANE_OPENAI_* setting that cannot be used as given."""


@dataclass(frozen=True)
class OpenAISettings:
    """Endpoint settings; every field None means "the SDK's own defaults" (OPENAI_API_KEY, ...)."""

    base_url: str | None = None
    api_key: str | None = None
    api: Api | None = None

    def __post_init__(self) -> None:
        if self.api is not None and self.api not in _APIS:
            raise SettingsError(
                f"{ENV_API}={self.api!r} is not an API runplane knows; use 'responses' "
                "(OpenAI, vLLM, llama.cpp) or 'chat_completions' (Ollama, LiteLLM, most others)."
            )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"{ENV_BASE_URL}={self.base_url!r} is not an http(s) URL; "
                "give the endpoint's base, for example http://127.0.0.1:8080/v1."
            )

    def __repr__(self) -> str:
        # Settings end up in logs, tracebacks and assertion messages: never print the key.
        key = None if self.api_key is None else "***"
        return f"OpenAISettings(base_url={self.base_url!r}, api_key={key!r}, api={self.api!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpenAISettings:
        env = os.environ if environ is None else environ
        api = (env.get(ENV_API) or "").strip().lower().replace("-", "_") or None
        return cls(
            base_url=env.get(ENV_BASE_URL) or None,
            api_key=env.get(ENV_API_KEY) or None,
            api=api,  # type: ignore[arg-type]  # validated in __post_init__
        )

    @property
    def configured(self) -> bool:
        return any(v is not None for v in (self.base_url, self.api_key, self.api))

    def effective_api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key to send. A local endpoint (llama.cpp, Ollama, vLLM) often wants none, but the
        openai client refuses to start without one: with a base URL and no key anywhere, send a
        placeholder instead of failing with "Missing credentials"."""
        env = os.environ if environ is None else environ
        if self.api_key is not None or self.base_url is None or env.get("OPENAI_API_KEY"):
            return self.api_key
        return NO_KEY

    @property
    def uses_chat_completions(self) -> bool:
        return self.api == "chat_completions"

    def provider(self) -> MultiProvider:
        """A fresh provider for one run."""
        return MultiProvider(
            openai_api_key=self.effective_api_key(),
            openai_base_url=self.base_url,
            openai_use_responses=None if self.api is None else self.api == "responses",
        )
