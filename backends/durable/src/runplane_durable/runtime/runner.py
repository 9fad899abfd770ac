"""`runplane_durable.Runner`: `agents.Runner`'s three classmethods, plus what durability adds."""

from __future__ import annotations

import contextlib
from typing import Any, cast

from agents import Agent, RunConfig, RunHooks, RunResult, RunState, Session
from agents.items import TResponseInputItem
from agents.run import DEFAULT_MAX_TURNS
from agents.run_context import TContext
from agents.run_error_handlers import RunErrorHandlers

from runplane import BackendRunner, RunOptions

from ..errors import DurableError
from ..names import check_run_id, new_run_id
from ..records import DEFAULT_QUEUE, Approval, CancelMode, EventRecord, RunRecord, RunStatus
from ..serde import load_value
from .agent_refs import resolve
from .backend import DurableBackend
from .handle import RunHandle
from .identity import claiming
from .identity import run_id as named_run

__all__ = ["Runner", "resume_run", "stored_context", "stored_input"]


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


def stored_context(record: RunRecord) -> Any:
    """The context a started run was stored with (`Runner.start`), rebuilt; None without one."""
    encoded = record.options.get("context")
    return None if encoded is None else load_value(encoded)


async def resume_run(
    backend: DurableBackend,
    record: RunRecord,
    starting_agent: Agent[Any],
    *,
    context: Any | None = None,
    hooks: RunHooks[Any] | None = None,
    run_config: RunConfig | dict[str, Any] | None = None,
    error_handlers: RunErrorHandlers[Any] | None = None,
    session: Session | None = None,
    claim: bool = False,
) -> RunResult:
    """Run `record` on `backend` under its own id, with its stored input and options (and its
    stored context, unless one is given): a queued run starts, an unfinished one resumes from
    its journal, a finished one replays its result. A run that stopped for approval resumes
    from its stored snapshot, with the decisions stored for it applied.

    `claim` (a worker's, of a run `claimable_runs` listed): the run is opened only if it is
    still in `record.status`; finished by another process since, RunLeasedError."""
    options = record.options
    given: RunOptions[Any] = RunOptions(
        context=context if context is not None else stored_context(record),
        max_turns=options.get("max_turns"),
        hooks=hooks,
        run_config=run_config,
        error_handlers=error_handlers,
        previous_response_id=options.get("previous_response_id"),
        auto_previous_response_id=bool(options.get("auto_previous_response_id")),
        conversation_id=options.get("conversation_id"),
        session=session,
    )
    with (
        claiming(record.id, record.status) if claim else contextlib.nullcontext(),
        named_run(record.id),
    ):
        snapshot = await backend.engine.load_snapshot(record.id)
        if snapshot is not None:
            return await backend.resume_stopped(record, snapshot, starting_agent, given)
        run_input = await stored_input(record, starting_agent)
        return await backend.run(starting_agent, run_input, **given.as_kwargs())


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
        backend = cls.durable()
        return await resume_run(
            backend,
            await backend.get_run(run_id),
            starting_agent,
            context=context,
            hooks=hooks,
            run_config=run_config,
            error_handlers=error_handlers,
            session=session,
        )

    @classmethod
    async def start(
        cls,
        agent: Agent[TContext] | str,
        input: str | list[TResponseInputItem],
        *,
        run_id: str | None = None,
        queue: str = DEFAULT_QUEUE,
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
    ) -> RunHandle:
        """Start a run for a worker (`runplane worker`) and return its handle at once.

        `agent` is the agent, or its import reference "pkg.module:attr" (imported here to learn
        its name). The run is stored `queued` on `queue` with its input, options and context
        (JSON data, a pydantic model or a dataclass; else JournalSerializationError, nothing
        stored); any worker of that queue that knows the agent (by reference, else by name)
        executes it. An existing `run_id` with the same agent and input is that run.
        """
        if isinstance(agent, str):
            ref: str | None = agent
            starting: Agent[Any] = resolve(agent)
        else:
            ref, starting = None, agent
        backend = cls.durable()
        options: RunOptions[Any] = RunOptions(
            context=context,
            max_turns=max_turns,
            previous_response_id=previous_response_id,
            auto_previous_response_id=auto_previous_response_id,
            conversation_id=conversation_id,
        )
        record = await backend.start(
            starting, input, options, run_id=run_id, agent_ref=ref, queue=queue
        )
        return RunHandle(record.id, backend.engine, agent=starting)

    @classmethod
    async def fork(
        cls,
        from_run: str,
        /,
        *,
        at: int,
        run_id: str | None = None,
        queue: str | None = DEFAULT_QUEUE,
        agent: Agent[Any] | None = None,
    ) -> RunHandle:
        """Fork run `from_run` at step `at` (the step numbers `runplane runs show` prints) and
        return the new run's handle at once (`Engine.fork_run`).

        The new run (`run_id`, else a new id) has the run's agent, input and options, and
        shares its journal before step `at`: opened, it replays those steps (no model or tool
        call) and goes on live from `at`. It is stored `queued` on `queue` for a worker that
        knows the agent, as `Runner.start` stores a run; with `queue=None` no worker takes it:
        run it here with `await Runner.resume(handle.run_id, agent)`. The run forked is not
        touched. `agent` names the agents the handle's `stream_events()` items carry.
        """
        backend = cls.durable()
        chosen = check_run_id(run_id) if run_id is not None else new_run_id()
        record = await backend.engine.fork_run(from_run, at=at, new_run_id=chosen, queue=queue)
        return RunHandle(record.id, backend.engine, agent=agent)

    @classmethod
    def handle(cls, run_id: str, agent: Agent[Any] | None = None) -> RunHandle:
        """The handle of an existing run (one `Runner.start` returned in another process, say);
        `agent` names the agents its `stream_events()` items carry."""
        return RunHandle(run_id, cls.durable().engine, agent=agent)

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

    # -- approvals: decided from any process; the run resumes under its own id ----------------

    @classmethod
    async def approvals(cls, run_id: str) -> list[Approval]:
        """The calls run `run_id` stopped for, with their decisions (`Engine.list_approvals`)."""
        return await cls.durable().engine.list_approvals(run_id)

    @classmethod
    async def approve(
        cls, run_id: str, call_id: str | None = None, *, always: bool = False, by: str | None = None
    ) -> list[Approval]:
        """Approve call `call_id` of run `run_id` (None: every pending call), from any process;
        `always` approves the tool's later calls in the run too. Recorded with who decided
        (`by`, else this process's user and host); approving again changes nothing. Then the
        run continues under its id: `Runner.resume(run_id, agent)`, the program passing its
        state back in, or a worker once every call is decided. Returns the run's approvals."""
        _, approvals = await cls.durable().engine.decide(
            run_id, call_id, approve=True, always=always, by=by
        )
        return approvals

    @classmethod
    async def reject(
        cls,
        run_id: str,
        call_id: str | None = None,
        *,
        message: str | None = None,
        always: bool = False,
        by: str | None = None,
    ) -> list[Approval]:
        """Reject call `call_id` of run `run_id` (None: every pending call): the tool does not
        run, and the model is told `message` (else the SDK's rejection text). As `approve`."""
        _, approvals = await cls.durable().engine.decide(
            run_id, call_id, approve=False, always=always, message=message, by=by
        )
        return approvals

    @classmethod
    async def events(cls, run_id: str, *, after: int = 0) -> list[EventRecord]:
        return await cls.durable().engine.list_events(run_id, after=after)
