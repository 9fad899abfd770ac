"""The direct backend: the SDK's own `AgentRunner`, optionally pointed at a compatible endpoint.

It is the reference every other backend is compared against, so it adds nothing to the run itself.
The endpoint settings (`runplane.endpoint`) are applied by the facade to every backend's runs; this
backend applies them too when it is called directly (`OpenAIBackend(settings).run(...)`), with the
same core functions, and a provider already chosen is passed through untouched.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, RunConfig, RunHooks, RunResult, RunResultStreaming, RunState, Session
from agents.items import TResponseInputItem
from agents.run import DEFAULT_MAX_TURNS
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

from runplane import SyncDriver, sdk_runner
from runplane.endpoint import ChatCompletionsHistoryError, OpenAISettings, check_history
from runplane.endpoint import with_provider as _with_provider

__all__ = ["ChatCompletionsHistoryError", "OpenAIBackend"]


class OpenAIBackend:
    """`RunnerBackend` running the SDK's loop in this process."""

    def __init__(self, settings: OpenAISettings | None = None) -> None:
        self.settings = settings if settings is not None else OpenAISettings.from_env()
        self._sync_driver = SyncDriver(self.run)

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.settings!r})"  # OpenAISettings' repr masks the key

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
        check_history(
            self.settings, previous_response_id, auto_previous_response_id, conversation_id
        )
        run_config, provider = _with_provider(run_config, self.settings)
        try:
            return await sdk_runner().run(
                starting_agent,
                input,
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
        finally:
            if provider is not None:
                await provider.aclose()

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
        if not self.settings.configured:
            # Nothing of ours to set up: exactly the SDK's own run_sync (including a custom
            # default runner's run_sync, which agents.Runner.run_sync would call).
            check_history(
                self.settings, previous_response_id, auto_previous_response_id, conversation_id
            )
            return sdk_runner().run_sync(
                starting_agent,
                input,
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
        # With an endpoint configured, the SDK's run_sync machinery (the thread's default loop
        # kept open between calls, Ctrl-C cancellation) drives this backend's `run`, so the
        # provider opens and closes on the loop the run uses; `asyncio.run` would close that
        # loop under the SDK's pooled HTTP connections and break the next call.
        return self._sync_driver.run_sync(
            starting_agent,
            input,
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
        check_history(
            self.settings, previous_response_id, auto_previous_response_id, conversation_id
        )
        run_config, provider = _with_provider(run_config, self.settings)
        result = sdk_runner().run_streamed(
            starting_agent,
            input,
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
        if provider is not None:
            provider.close_when_done(result)
        return result
