"""The direct backend: the SDK's own `AgentRunner`, optionally pointed at a compatible endpoint.

It is the reference every other backend is compared against, so it adds nothing to the run itself:
it only picks the model provider from settings and refuses the one combination that would lose
conversation history silently.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from agents import Agent, RunConfig, RunHooks, RunResult, RunResultStreaming, RunState, Session
from agents.exceptions import UserError
from agents.items import TResponseInputItem
from agents.models.multi_provider import MultiProvider
from agents.run import DEFAULT_MAX_TURNS
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

from runplane import SyncDriver, sdk_runner

from .settings import ENV_API, OpenAISettings

__all__ = ["ChatCompletionsHistoryError", "OpenAIBackend"]


class ChatCompletionsHistoryError(UserError):
    """Server-side conversation state requested on an endpoint that has none."""


_RunConfigArg = RunConfig | dict[str, Any] | None


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
        self._check_history(
            starting_agent, previous_response_id, auto_previous_response_id, conversation_id
        )
        run_config, provider = self._with_provider(run_config)
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
            self._check_history(
                starting_agent, previous_response_id, auto_previous_response_id, conversation_id
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
        self._check_history(
            starting_agent, previous_response_id, auto_previous_response_id, conversation_id
        )
        run_config, provider = self._with_provider(run_config)
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
            _close_when_done(result, provider)
        return result

    def _with_provider(
        self, run_config: _RunConfigArg
    ) -> tuple[_RunConfigArg, MultiProvider | None]:
        """Point the run at the configured endpoint unless the caller chose a provider."""
        if not self.settings.configured:
            return run_config, None
        if isinstance(run_config, dict):
            if "model_provider" in run_config:
                return run_config, None
            provider = self.settings.provider()
            return {**run_config, "model_provider": provider}, provider
        if run_config is not None and type(run_config.model_provider) is not MultiProvider:
            return run_config, None
        provider = self.settings.provider()
        base = run_config if run_config is not None else RunConfig()
        return dataclasses.replace(base, model_provider=provider), provider

    def _check_history(
        self,
        agent: Agent[Any],
        previous_response_id: str | None,
        auto_previous_response_id: bool,
        conversation_id: str | None,
    ) -> None:
        """Chat Completions keeps no server-side state: refuse rather than drop earlier turns."""
        if not (previous_response_id or auto_previous_response_id or conversation_id):
            return
        # Only our own configuration is checked: for an agent whose model is a Chat Completions
        # model the SDK has its own policy (a warning, or UserError under strict validation),
        # and the direct backend must behave exactly like the SDK.
        if not self.settings.uses_chat_completions:
            return
        where = f"this backend is configured for Chat Completions ({ENV_API}=chat_completions)"
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


def _close_when_done(result: RunResultStreaming, provider: MultiProvider) -> None:
    task = result.run_loop_task
    if task is None:  # pragma: no cover - the SDK always starts the loop task
        return
    closing: set[asyncio.Task[None]] = set()

    def close(_: asyncio.Task[Any]) -> None:
        t = asyncio.get_running_loop().create_task(provider.aclose())
        closing.add(t)
        t.add_done_callback(closing.discard)

    task.add_done_callback(close)
