"""The direct backend: the SDK's own `AgentRunner`, optionally pointed at a compatible endpoint.

It is the reference every other backend is compared against, so it adds nothing to the run itself.
The endpoint settings (`runplane.endpoint`) are applied by the facade to every backend's runs; this
backend applies them too when it is called directly (`OpenAIBackend(settings).run(...)`), with the
same core functions, and a provider already chosen is passed through untouched.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, RunResult, RunResultStreaming

from runplane import RunInput, RunnerBackendBase, RunOptions, sdk_runner
from runplane.base import RunMode
from runplane.endpoint import ChatCompletionsHistoryError, OpenAISettings, apply_endpoint

__all__ = ["ChatCompletionsHistoryError", "OpenAIBackend"]


class OpenAIBackend(RunnerBackendBase):
    """`RunnerBackend` running the SDK's loop in this process."""

    def __init__(self, settings: OpenAISettings | None = None) -> None:
        self.settings = settings if settings is not None else OpenAISettings.from_env()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.settings!r})"  # OpenAISettings' repr masks the key

    async def _run(
        self,
        starting_agent: Agent[Any],
        input: RunInput[Any],
        options: RunOptions[Any],
        mode: RunMode,
    ) -> RunResult:
        options, provider = apply_endpoint(options, self.settings)
        try:
            return await sdk_runner().run(starting_agent, input, **options.as_kwargs())
        finally:
            if provider is not None:
                await provider.aclose()

    def _run_sync(
        self, starting_agent: Agent[Any], input: RunInput[Any], options: RunOptions[Any]
    ) -> RunResult:
        if not self.settings.configured:
            # Nothing of ours to set up: exactly the SDK's own run_sync (including a custom
            # default runner's run_sync, which agents.Runner.run_sync would call).
            apply_endpoint(options, self.settings)  # the history check: nothing else to apply
            return sdk_runner().run_sync(starting_agent, input, **options.as_kwargs())
        # With an endpoint configured, the SDK's run_sync machinery (the thread's default loop
        # kept open between calls, Ctrl-C cancellation) drives `_run` (the base class's
        # `_run_sync`), so the provider opens and closes on the loop the run uses; `asyncio.run`
        # would close that loop under the SDK's pooled HTTP connections and break the next call.
        return super()._run_sync(starting_agent, input, options)

    def _run_streamed(
        self, starting_agent: Agent[Any], input: RunInput[Any], options: RunOptions[Any]
    ) -> RunResultStreaming:
        options, provider = apply_endpoint(options, self.settings)
        result = sdk_runner().run_streamed(starting_agent, input, **options.as_kwargs())
        if provider is not None:
            provider.close_when_done(result)
        return result
