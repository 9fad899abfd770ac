"""The model endpoint a user configured (RUNPLANE_OPENAI_*), applied to every backend's runs.

One place owns it so that the one-line swap holds: a program pointed at an OpenAI-compatible
server answers the same on `openai`, `durable` or a third-party backend. The facade reads the
settings at every call and, when the caller chose no model provider, puts a fresh provider for
this endpoint into the run's `run_config` before the backend sees it; the provider is closed when
the run ends. Backends that call models through the SDK need to do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agents import RunConfig, RunResultStreaming
from agents.exceptions import UserError
from agents.models.interface import Model
from agents.models.multi_provider import MultiProvider

from .errors import RunplaneError

if TYPE_CHECKING:
    from agents.run_context import TContext

    from .options import RunOptions

__all__ = [
    "ENV_API",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "NO_KEY",
    "Api",
    "ChatCompletionsHistoryError",
    "EndpointProvider",
    "OpenAISettings",
    "SettingsError",
    "apply_endpoint",
    "check_history",
    "with_provider",
]

ENV_BASE_URL = "RUNPLANE_OPENAI_BASE_URL"
ENV_API_KEY = "RUNPLANE_OPENAI_API_KEY"
ENV_API = "RUNPLANE_OPENAI_API"

NO_KEY = "runplane-no-key"

Api = Literal["responses", "chat_completions"]
_APIS: tuple[Api, ...] = ("responses", "chat_completions")


class SettingsError(RunplaneError, UserError):
    """A RUNPLANE_OPENAI_* setting that cannot be used as given (raised before any run starts)."""


class ChatCompletionsHistoryError(UserError):
    """Server-side conversation state requested on an endpoint that has none."""


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

    def provider(self) -> EndpointProvider:
        """A fresh provider for one run."""
        return EndpointProvider(self)


class EndpointProvider(MultiProvider):
    """The SDK's `MultiProvider` for the configured endpoint, owned by one run.

    It remembers the event loop that first asked it for a model, because its HTTP client is bound
    to that loop: `close_now()` closes it there after a `run_sync`, whose loop is idle by then.
    """

    def __init__(self, settings: OpenAISettings) -> None:
        super().__init__(
            openai_api_key=settings.effective_api_key(),
            openai_base_url=settings.base_url,
            openai_use_responses=None if settings.api is None else settings.api == "responses",
        )
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None

    def get_model(self, model_name: str | None) -> Model:
        if self._loop is None:
            with contextlib.suppress(RuntimeError):  # asked outside a loop: nothing bound yet
                self._loop = asyncio.get_running_loop()
        return super().get_model(model_name)

    def close_now(self) -> None:
        """Close from synchronous code, on the loop the run used, if that loop is still usable."""
        loop = self._loop
        if loop is None or loop.is_closed() or loop.is_running():
            return  # never used, or its loop (and the connections bound to it) is gone
        loop.run_until_complete(self.aclose())

    def close_when_done(self, result: RunResultStreaming) -> None:
        """Close once a streamed run's loop task ends, whatever it ends with."""
        task = result.run_loop_task
        if task is None:  # a stand-in runner started no run: nothing will use the provider
            self.close_now()
            return
        closing: set[asyncio.Task[None]] = set()

        def close(_: asyncio.Future[Any]) -> None:
            t = asyncio.get_running_loop().create_task(self.aclose())
            closing.add(t)
            t.add_done_callback(closing.discard)

        task.add_done_callback(close)


_RunConfigArg = RunConfig | dict[str, Any] | None


def with_provider(
    run_config: _RunConfigArg, settings: OpenAISettings
) -> tuple[_RunConfigArg, EndpointProvider | None]:
    """`run_config` pointed at the configured endpoint, and the provider to close after the run.

    Left alone (provider None) when nothing is configured, or when the caller chose a provider:
    a dict naming `model_provider`, or a RunConfig whose `model_provider` is not the SDK's default
    `MultiProvider` (an EndpointProvider already inserted, by the facade or an enclosing run, is
    such a choice, so a nested run shares its parent's).
    """
    if not settings.configured:
        return run_config, None
    if isinstance(run_config, dict):
        if "model_provider" in run_config:
            return run_config, None
        provider = settings.provider()
        return {**run_config, "model_provider": provider}, provider
    if run_config is not None and type(run_config.model_provider) is not MultiProvider:
        return run_config, None
    provider = settings.provider()
    base = run_config if run_config is not None else RunConfig()
    return dataclasses.replace(base, model_provider=provider), provider


def apply_endpoint(
    options: RunOptions[TContext], settings: OpenAISettings
) -> tuple[RunOptions[TContext], EndpointProvider | None]:
    """A run's options under these settings: `check_history`, then `with_provider`."""
    check_history(
        settings,
        options.previous_response_id,
        options.auto_previous_response_id,
        options.conversation_id,
    )
    run_config, provider = with_provider(options.run_config, settings)
    if provider is None:
        return options, None
    return dataclasses.replace(options, run_config=run_config), provider


def check_history(
    settings: OpenAISettings,
    previous_response_id: str | None,
    auto_previous_response_id: bool,
    conversation_id: str | None,
) -> None:
    """Chat Completions keeps no server-side state: refuse rather than drop earlier turns."""
    if not (previous_response_id or auto_previous_response_id or conversation_id):
        return
    # Only runplane's configuration is checked: for an agent whose model is a Chat Completions
    # model the SDK has its own policy (a warning, or UserError under strict validation), and
    # runplane must behave exactly like the SDK there.
    if not settings.uses_chat_completions:
        return
    where = f"runplane is configured for Chat Completions ({ENV_API}=chat_completions)"
    used = (
        "previous_response_id"
        if previous_response_id
        else "auto_previous_response_id"
        if auto_previous_response_id
        else "conversation_id"
    )
    raise ChatCompletionsHistoryError(
        f"{used} needs server-side conversation state (the Responses API), but {where}: "
        "earlier turns would be silently lost. Carry history yourself instead: pass "
        "`session=SQLiteSession(...)`, or `result.to_input_list() + [new message]` as input."
    )
