"""The SDK's own agent loop, cut off after RUNPLANE_DEADLINE_SECONDS (default 300)."""

import asyncio
import os
from typing import Any

from agents import Agent, RunConfig, RunHooks, RunResult, RunResultStreaming, RunState, Session
from agents.exceptions import AgentsException
from agents.items import TResponseInputItem
from agents.run import DEFAULT_MAX_TURNS
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

import runplane


class DeadlineExceeded(AgentsException):
    """The run took longer than its deadline and was cancelled."""


class DeadlineBackend:
    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds or float(os.environ.get("RUNPLANE_DEADLINE_SECONDS", "300"))

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
        # runplane.sdk_runner() is the SDK's own AgentRunner, even under runplane.install().
        run = runplane.sdk_runner().run(
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
        try:
            return await asyncio.wait_for(run, self.seconds)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"run exceeded its {self.seconds:g} s deadline") from None

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
        # The SDK's own run_sync machinery drives our async run (asyncio.run would close the
        # thread's default loop under the SDK's pooled connections and break the next call).
        return runplane.SyncDriver(self.run).run_sync(
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
        # Synchronous, like the SDK's: it returns at once and events flow as the run produces
        # them. At the deadline the run is cancelled; the stream then ends early.
        result = runplane.sdk_runner().run_streamed(
            starting_agent,
            input,
            context=context,
            max_turns=max_turns,
            hooks=hooks,
            run_config=run_config,
            previous_response_id=previous_response_id,
            auto_previous_response_id=auto_previous_response_id,
            conversation_id=conversation_id,
            session=session,
            error_handlers=error_handlers,
        )
        timer = asyncio.get_running_loop().call_later(self.seconds, result.cancel)
        if result.run_loop_task is not None:
            result.run_loop_task.add_done_callback(lambda _: timer.cancel())
        return result
