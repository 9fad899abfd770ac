"""`runplane_durable.Runner`: `agents.Runner`'s three classmethods, plus what durability adds."""

from __future__ import annotations

from typing import Any, cast

from agents import Agent, RunConfig, RunHooks, RunResult, RunState, Session
from agents.items import TResponseInputItem
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

from runplane import BackendRunner

from ..errors import DurableError
from ..records import CancelMode, EventRecord, RunRecord, RunStatus
from .backend import DurableBackend
from .identity import run_id as named_run

__all__ = ["Runner", "stored_input"]


async def stored_input(
    record: RunRecord, starting_agent: Agent[Any]
) -> str | list[TResponseInputItem] | RunState[Any]:
    """The input a run was started with, as the SDK takes it."""
    data = record.input
    if "text" in data:
        return cast(str, data["text"])
    if "items" in data:
        return cast(list[TResponseInputItem], data["items"])
    return await RunState.from_json(starting_agent, data["run_state"])


class Runner(BackendRunner):
    """`from runplane_durable import Runner`: a one-line swap for `agents.Runner`.

    The same class `runplane.runner("durable")` builds, plus durability's extra classmethods.
    """

    backend_name = "durable"

    @classmethod
    def durable(cls) -> DurableBackend:
        backend = cls.backend()
        if not isinstance(backend, DurableBackend):  # pragma: no cover - misconfigured registry
            raise DurableError(f"backend 'durable' is {type(backend).__name__}, not DurableBackend")
        return backend

    @classmethod
    async def resume(
        cls,
        run_id: str,
        starting_agent: Agent[TContext],
        *,
        context: TContext | None = None,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        error_handlers: RunErrorHandlers[TContext] | None = None,
        session: Session | None = None,
    ) -> RunResult:
        """Continue run `run_id` from its journal (or return its result if it finished).

        The input and options (max_turns, previous_response_id, ...) come from the stored run;
        what cannot be stored (the agent, its tools, context, hooks) the caller passes again.
        """
        record = await cls.durable().get_run(run_id)
        options = record.options
        with named_run(run_id):
            return await cls.run(
                starting_agent,
                await stored_input(record, starting_agent),
                context=context,
                max_turns=options.get("max_turns"),
                hooks=hooks,
                run_config=run_config,
                error_handlers=error_handlers,
                previous_response_id=options.get("previous_response_id"),
                auto_previous_response_id=bool(options.get("auto_previous_response_id")),
                conversation_id=options.get("conversation_id"),
                session=session,
            )

    @classmethod
    async def get_run(cls, run_id: str) -> RunRecord:
        return await cls.durable().get_run(run_id)

    @classmethod
    async def list_runs(
        cls, *, limit: int = 50, status: RunStatus | None = None
    ) -> list[RunRecord]:
        return await cls.durable().list_runs(limit=limit, status=status)

    @classmethod
    async def cancel(cls, run_id: str, mode: CancelMode = "immediate") -> RunRecord:
        """Cancel run `run_id` from this process, wherever it executes; returns its record.

        A run no process executes (stopped, orphaned, awaiting approval, queued) is recorded
        cancelled at once. One executing in another process (or this one) keeps running until
        that process sees the request, within about RUNPLANE_CANCEL_POLL_SECONDS (1 s), and
        stops it as the SDK's `RunResultStreaming.cancel(mode)` would: "immediate", or
        "after_turn" (the current turn ends, the next model call never starts). Its caller then
        gets `RunCancelledError` (`run`, `run_sync`, `resume`), or its stream ends (`run_streamed`).
        A completed or failed run raises `RunFinishedError`; a cancelled one is returned as it is.
        """
        return await cls.durable().cancel(run_id, mode=mode)

    @classmethod
    async def events(cls, run_id: str, *, after: int = 0) -> list[EventRecord]:
        return await cls.durable().engine.list_events(run_id, after=after)
