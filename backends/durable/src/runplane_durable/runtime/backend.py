"""`DurableBackend`: the SDK's own agent loop, with every non-deterministic step journaled.

A run executes in the calling process. Model responses and tool outputs are committed to the
engine before the loop acts on them, so a run killed at any point resumes by replaying the
journal (no model call, no completed tool repeated) and then continues live.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Literal, TypeVar, cast

from agents import Agent, RunResult, RunResultStreaming, RunState
from agents.stream_events import StreamEvent

from runplane import RunInput, RunnerBackendBase, RunOptions, sdk_runner
from runplane.base import RunMode

from ..engine import Engine, RunSession, open_engine
from ..errors import (
    JournalSerializationError,
    RunCancelledError,
    RunLeasedError,
    RunNotFoundError,
)
from ..events import PendingCall, parse
from ..names import check_agent_name, check_run_id, new_run_id, tool_key
from ..owner import requester
from ..records import DEFAULT_QUEUE, CancelMode, RunRecord, RunSpec, RunStatus, Snapshot
from ..serde import dump_display, dump_value, fingerprint
from . import intercept
from .active import ACTIVE, LAST_RUN_ID, NAMED_RUN_ID, REQUESTED_RUN_ID, ActiveRun
from .agent_refs import ref_of
from .approvals import (
    STOPPED_NESTED,
    apply_decisions,
    caller_decisions,
    issued_by,
    remember_states,
    restored_state,
    snapshot_of,
)
from .cancel import Stopper, requested_by, watch
from .cancel import cancel_poll_seconds as poll_setting
from .conversation import DurableSession, conversation_turn, conversation_turn_id
from .durability import Durability
from .identity import NestedRunId, claim_status_for, reserve_run_id, take_requested_run_id
from .sdk_internals import stream_error

__all__ = ["DEFAULT_LEASE_SECONDS", "DurableBackend"]

log = logging.getLogger("runplane_durable")

DEFAULT_LEASE_SECONDS = 30.0
T = TypeVar("T")
_STOPPING = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


def _input_json(input: RunInput[Any]) -> Any:
    if isinstance(input, RunState):
        try:
            return {"run_state": input.to_json()}
        except Exception as exc:
            raise JournalSerializationError(
                f"the RunState given as input cannot be serialized by RunState.to_json() "
                f"({type(exc).__name__}: {exc}); the durable backend stores a run's input to "
                "resume it. Pass a RunState the SDK produced (result.to_state()) or restored "
                "(RunState.from_json)."
            ) from exc
    if isinstance(input, str):
        return {"text": input}
    return {"items": [_plain(item) for item in input]}


def _plain(item: Any) -> Any:
    dump = getattr(item, "model_dump", None)
    return dump(mode="json", exclude_unset=True) if callable(dump) else item


class DurableBackend(RunnerBackendBase):
    """`RunnerBackend` whose runs survive the death of the process running them."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        cancel_poll_seconds: float | None = None,
    ) -> None:
        """`cancel_poll_seconds`: how often an executing run checks whether another process
        cancelled it (default RUNPLANE_CANCEL_POLL_SECONDS, else 1.0)."""
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        self.cancel_poll_seconds = poll_setting(cancel_poll_seconds)
        self.engine: Engine = engine if engine is not None else open_engine()
        self.lease_seconds = lease_seconds

    def __repr__(self) -> str:
        return f"DurableBackend({self.engine!r})"

    # -- the SDK's three entry points (their signatures are RunnerBackendBase's) ---------------

    async def _run(
        self,
        starting_agent: Agent[Any],
        input: RunInput[Any],
        options: RunOptions[Any],
        mode: RunMode,
    ) -> RunResult:
        intercept.install()  # the SDK's seams are wrapped by the first durable run
        chosen = take_requested_run_id()
        spec: RunSpec | None = None
        named = isinstance(chosen, NestedRunId) or chosen == NAMED_RUN_ID.get()
        if isinstance(input, RunState) or named:
            # A state a stopped durable run gave out (or any input under a stopped run's id):
            # that run continues, under its own id, from its stored snapshot.
            issued = issued_by(input) if isinstance(input, RunState) else None
            if issued is not None:
                LAST_RUN_ID.set(issued)  # the run this continues, not the id taken for a new one
            stopped = await self._stopped(issued or str(chosen))
            if stopped is not None:
                record, snapshot = stopped
                if isinstance(input, RunState):
                    return await self.resume_stopped(
                        record,
                        snapshot,
                        starting_agent,
                        options,
                        caller_state=input,
                        nested=isinstance(chosen, NestedRunId),
                    )
                spec = self._spec(starting_agent, input, options, mode=mode, chosen=chosen)
                if (spec.agent_name, spec.input_fingerprint) == (
                    record.agent_name,
                    record.input_fingerprint,
                ):
                    return await self.resume_stopped(record, snapshot, starting_agent, options)
                # another agent or input: opening the run says which
        if spec is None:
            spec = self._spec(starting_agent, input, options, mode=mode, chosen=chosen)
        return await self._execute(starting_agent, input, options, spec)

    async def _execute(
        self,
        starting_agent: Agent[Any],
        input: RunInput[Any],
        options: RunOptions[Any],
        spec: RunSpec,
        *,
        model_calls: int = 0,
        fresh_session_stretch: bool = False,
    ) -> RunResult:
        """Open the run `spec` names and run the SDK's loop on `input` in it; `model_calls`:
        where the journal's model cursor starts (a resume from a snapshot starts past the
        calls the snapshot holds)."""
        intercept.install()  # a resume from a snapshot may be this process's first durable run
        session = await self.engine.open_run(spec, lease_seconds=self.lease_seconds)
        active = ActiveRun(
            opening=_ready(session),
            streamed=False,
            backend=self,
            engine=self.engine,
            model_ordinal=model_calls,
            fresh_session_stretch=fresh_session_stretch,
        )
        await active.session()
        token = ACTIVE.set(active)
        # The SDK's loop runs in a task of its own, so a cancel from another process can stop
        # it without cancelling the caller's task; cancelling the caller cancels it too.
        loop_task = asyncio.ensure_future(
            sdk_runner().run(starting_agent, input, **options.as_kwargs())
        )
        ACTIVE.reset(token)
        helpers: list[asyncio.Future[None]] = []
        if not session.read_only:
            active.stopper = Stopper(task=loop_task)
            helpers.append(asyncio.ensure_future(self._heartbeat(session)))
            helpers.append(
                asyncio.ensure_future(watch(session, active.stopper, self.cancel_poll_seconds))
            )
        try:
            result = await loop_task
        except BaseException as exc:
            for helper in helpers:
                await _stop(helper)
            asked = active.stopper.mode if active.stopper is not None else None
            if asked is not None and isinstance(exc, (asyncio.CancelledError, RunCancelledError)):
                raise await self._cancelled_by_request(session, asked) from None
            await self._settle_failure(session, exc)
            raise
        for helper in helpers:
            await _stop(helper)
        await self._settle_success(session, result, active)
        return result

    async def _cancelled_by_request(self, session: RunSession, mode: CancelMode) -> BaseException:
        """Record the run cancelled, as another process asked; the error its caller gets,
        saying who asked."""
        await self._settle_cancelled(session)
        run_id = session.record.id
        try:
            asked = requested_by([parse(e) for e in await self.engine.list_events(run_id)])
        except Exception:  # the run is recorded cancelled: who asked is only for the message
            asked = None
        if asked is None:
            return RunCancelledError(run_id=run_id, by=None, mode=mode)
        return RunCancelledError(run_id=run_id, by=asked.by(), mode=asked.mode)

    def _run_sync(
        self, starting_agent: Agent[Any], input: RunInput[Any], options: RunOptions[Any]
    ) -> RunResult:
        # Choose the id here, in the caller's context, so last_run_id() sees it: the SDK runs
        # the coroutine in a task whose context is a copy.
        token = REQUESTED_RUN_ID.set(take_requested_run_id())
        issued = issued_by(input) if isinstance(input, RunState) else None
        if issued is not None:
            LAST_RUN_ID.set(issued)
        try:
            return super()._run_sync(starting_agent, input, options)
        finally:
            REQUESTED_RUN_ID.reset(token)

    def _run_streamed(
        self, starting_agent: Agent[Any], input: RunInput[Any], options: RunOptions[Any]
    ) -> RunResultStreaming:
        intercept.install()
        chosen = take_requested_run_id()
        issued = issued_by(input) if isinstance(input, RunState) else None
        named = isinstance(chosen, NestedRunId) or chosen == NAMED_RUN_ID.get()
        # The run is opened lazily, by the first step that needs it, inside the SDK's run task:
        # so the SDK validates its arguments (and requires a running loop) exactly as it would
        # without runplane, before anything is written.
        if isinstance(input, RunState) and (issued is not None or named):
            # A state a stopped durable run of this process gave out, or a state under a
            # stopped run's id (a nested run its parent's resume starts again): that run
            # continues, under its id, on the state (its snapshot verified, the caller's
            # decisions recorded); under an id that never stopped, a run opens as usual.
            caller: RunState[Any] = input
            target = issued or str(chosen)
            LAST_RUN_ID.set(target)
            fresh = (
                None
                if issued
                else self._spec(starting_agent, input, options, mode="run_streamed", chosen=chosen)
            )

            async def reopen() -> RunSession:
                return await self._reopen_stopped(target, caller, active, fresh)

            opening: _Lazy = _Lazy(reopen)
        else:
            spec = self._spec(starting_agent, input, options, mode="run_streamed", chosen=chosen)
            opening = _Lazy(lambda: self.engine.open_run(spec, lease_seconds=self.lease_seconds))
        active = ActiveRun(opening=opening, streamed=True, backend=self, engine=self.engine)
        token = ACTIVE.set(active)
        try:
            result = sdk_runner().run_streamed(starting_agent, input, **options.as_kwargs())
        finally:
            ACTIVE.reset(token)
        if not isinstance(result, RunResultStreaming) or result.run_loop_task is None:
            return result  # a stand-in default runner started no run: nothing to settle
        stream = _Stream()
        active.stopper = Stopper(streamed=result)
        settled = asyncio.get_running_loop().create_task(
            self._settle_stream(result, active, stream)
        )
        _watch_stream(result, settled, stream)
        return result

    def reserve_run_id(self, input: Any = None) -> contextlib.AbstractContextManager[str]:
        """The durable id of the run started inside (so observers' RunInfo.run_id matches it):
        for a RunState a stopped run of this process gave out, that run's, which it continues."""
        return _reserve(issued_by(input) if isinstance(input, RunState) else None)

    # -- durable execution ----------------------------------------------------------------------

    def _spec(
        self,
        agent: Agent[Any],
        input: RunInput[Any],
        options: RunOptions[Any],
        *,
        mode: str,
        chosen: str | None = None,
        agent_ref: str | None = None,
        queue: str | None = DEFAULT_QUEUE,
        stored: dict[str, Any] | None = None,
    ) -> RunSpec:
        run_input = _input_json(input)
        name = getattr(agent, "name", "")  # agents.Runner passes arguments through untouched
        if isinstance(name, str):  # the SDK reports a nameless agent its own way
            check_agent_name(name)
        if chosen is None:
            chosen = take_requested_run_id()
        # A run a durable run's tool starts (`Agent.as_tool`) is resumed by its parent, which
        # starts it again: no worker may take it over on its own, so it gets no queue.
        nested = isinstance(chosen, NestedRunId)
        return RunSpec(
            run_id=str(chosen),  # a plain str: a NestedRunId is only a marker
            agent_name=name,
            input=run_input,
            input_fingerprint=fingerprint({"agent": name, "input": run_input}),
            options={
                "mode": mode,
                "max_turns": options.max_turns,
                "previous_response_id": options.previous_response_id,
                "auto_previous_response_id": options.auto_previous_response_id,
                "conversation_id": options.conversation_id,
                **(stored or {}),
            },
            named=chosen == NAMED_RUN_ID.get(),
            agent_ref=agent_ref or (ref_of(agent) if isinstance(agent, Agent) else None),
            queue=None if nested else queue,
            claim_status=claim_status_for(str(chosen)),
        )

    async def _heartbeat_once_open(self, active: ActiveRun) -> None:
        try:
            session = await active.session()
        except BaseException:
            return  # the run reports its own opening error
        if not session.read_only:
            await self._heartbeat(session)

    async def _watch_once_open(self, active: ActiveRun) -> None:
        try:
            session = await active.session()
        except BaseException:
            return
        if not session.read_only and active.stopper is not None:
            await watch(session, active.stopper, self.cancel_poll_seconds)

    async def _heartbeat(self, session: RunSession) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await session.heartbeat()
            except RunLeasedError:
                log.error("run %s lost its lease to another process", session.record.id)
                return
            except Exception:  # a missed beat is retried; the lease outlives two of them
                log.warning("heartbeat of run %s failed", session.record.id, exc_info=True)

    async def _settle_success(
        self, session: RunSession, result: RunResult | RunResultStreaming, active: ActiveRun
    ) -> None:
        try:
            if session.read_only:
                return
            if result.interruptions:
                try:
                    snapshot = snapshot_of(result, active.model_ordinal)
                except JournalSerializationError as exc:  # it could never be resumed
                    await session.finish("failed", error=exc)
                    raise
                await session.finish(
                    "awaiting_approval",
                    calls=_waiting(result, active.model_ordinal),
                    snapshot=snapshot,
                )
                remember_states(result, session.record.id)
                stopped = STOPPED_NESTED.get()
                if stopped is not None:  # a run a durable run's tool started (as_tool)
                    stopped.append(session.record.id)
                return
            await session.finish("completed", final_output=dump_display(result.final_output))
        finally:
            await session.close()

    async def _settle_failure(self, session: RunSession, error: BaseException) -> None:
        try:
            if session.read_only or isinstance(error, RunLeasedError):
                return
            if isinstance(error, _STOPPING):
                await session.release()  # stopped, not failed: resumable at once
            else:
                await session.finish("failed", error=error)
        except Exception as exc:  # never hide the run's own error behind a bookkeeping one
            note = f"runplane-durable could not record the failure: {exc}"
            if hasattr(error, "add_note"):  # Python 3.11+
                error.add_note(note)
            else:  # pragma: no cover
                log.error("%s", note)
        finally:
            await session.close()

    async def _settle_stream(
        self, result: RunResultStreaming, active: ActiveRun, stream: _Stream
    ) -> None:
        heartbeat = asyncio.ensure_future(self._heartbeat_once_open(active))
        watcher = asyncio.ensure_future(self._watch_once_open(active))
        task = result.run_loop_task
        try:
            if task is not None:
                await _outlive(task)
        finally:
            await _stop(heartbeat)
            await _stop(watcher)
        try:
            session = await active.session()
        except BaseException:
            return  # the run itself reported the error (its first step awaited the opening)
        # What a consumer has seen (guardrail tripwires, max turns), else the run's own failure:
        # a run may fail before anyone reads its stream, or with no one ever reading it.
        error = stream_error(result)
        finished = result.final_output is not None or bool(result.interruptions)
        if error is not None:
            await self._settle_failure(session, error)
        elif stream.cancelled_by_caller and not finished:
            await self._settle_cancelled(session)
        elif task is not None and task.cancelled():
            await self._settle_failure(session, asyncio.CancelledError())
        else:  # an unstorable final output raises here; the stream wrapper re-raises it
            await self._settle_success(session, result, active)

    async def _settle_cancelled(self, session: RunSession) -> None:
        try:
            if not session.read_only:
                await session.finish("cancelled")
        finally:
            await session.close()

    # -- approvals: a stopped run resumes under its own id, from its stored snapshot -----------

    async def _stopped(self, run_id: str) -> tuple[RunRecord, Snapshot] | None:
        """Run `run_id` and its verified snapshot, if it exists and ever stopped for approval."""
        snapshot = await self.engine.load_snapshot(run_id)
        if snapshot is None:
            return None
        try:
            return await self.engine.get_run(run_id), snapshot
        except RunNotFoundError:  # pruned meanwhile
            return None

    async def resume_stopped(
        self,
        record: RunRecord,
        snapshot: Snapshot,
        starting_agent: Agent[Any],
        options: RunOptions[Any],
        *,
        caller_state: RunState[Any] | None = None,
        nested: bool = False,
    ) -> RunResult:
        """Continue `record` under its own id; the run replays its journal past the snapshot
        and goes on.

        Given `caller_state` (the SDK's pattern: approve on the result's state and pass it back
        in), the run goes on from that very state, as the SDK's runner would (the SDK updates
        it in place, and the caller may have changed it): its decisions are recorded first,
        like those made from another process, and stored decisions it lacks are applied to it.
        Without one (`Runner.resume`, a worker), it goes on from the stored snapshot with the
        stored decisions applied, its context `options.context` else the stored one."""
        if caller_state is not None:
            if await self._record_decisions(record, snapshot, caller_state):
                snapshot = await self.engine.load_snapshot(record.id) or snapshot
            if not nested:  # a nested run's state holds the parent's decisions, as the SDK keeps
                apply_decisions(record.id, caller_state, snapshot, strict=False)
            return await self._execute(
                starting_agent,
                caller_state,
                options,
                _spec_of(record),
                model_calls=snapshot.model_calls,
                fresh_session_stretch=_continues_anew(record),
            )
        state = await restored_state(record.id, starting_agent, snapshot, options.context)
        # The context is in the restored state; passing it to the SDK again would make it
        # build a fresh one and drop the decisions (openai-agents issue 4244).
        plain = dataclasses.replace(options, context=None)
        return await self._execute(
            starting_agent,
            state,
            plain,
            _spec_of(record),
            model_calls=snapshot.model_calls,
            fresh_session_stretch=_continues_anew(record),
        )

    async def _reopen_stopped(
        self, run_id: str, caller: RunState[Any], active: ActiveRun, fresh: RunSpec | None
    ) -> RunSession:
        """Open stopped run `run_id` for a streamed continuation on the caller's state: its
        snapshot verified, the caller's decisions recorded, the journal cursor past the
        snapshot's model calls. A run that never stopped opens from `fresh`, when given."""
        stopped = await self._stopped(run_id)
        if stopped is None:
            if fresh is None:  # pragma: no cover - a state is given out only with its snapshot
                raise RunNotFoundError(run_id=run_id)
            return await self.engine.open_run(fresh, lease_seconds=self.lease_seconds)
        record, snapshot = stopped
        await self._record_decisions(record, snapshot, caller)
        active.model_ordinal = snapshot.model_calls
        active.fresh_session_stretch = _continues_anew(record)
        return await self.engine.open_run(_spec_of(record), lease_seconds=self.lease_seconds)

    async def _record_decisions(
        self, record: RunRecord, snapshot: Snapshot, caller: RunState[Any]
    ) -> bool:
        """Record the decisions `caller` holds on the calls the run waits on; whether any was
        new."""
        decided = caller_decisions(record.id, caller, snapshot.approvals)
        host, pid, user = requester()
        by = f"{user or '?'}@{host} (Runner.run, pid {pid})"
        new = False
        for approval, approved, message in decided:
            if approval.decided:
                continue  # recorded already; a decision the other way raises in decide
            await self.engine.decide(
                record.id, approval.call_id, approve=approved, message=message, by=by
            )
            new = True
        return new

    # -- durable extras -------------------------------------------------------------------------

    async def start(
        self,
        agent: Agent[Any],
        input: RunInput[Any],
        options: RunOptions[Any],
        *,
        run_id: str | None = None,
        agent_ref: str | None = None,
        queue: str = DEFAULT_QUEUE,
    ) -> RunRecord:
        """Queue a run of `agent` for a worker (`Runner.start`): stored with its input, its
        options, its context (when the journal can store it) and `agent_ref` (else the
        agent's own, when it has one), under `run_id` (else a new id). Nothing runs here."""
        stored: dict[str, Any] = {}
        if options.context is not None:
            try:
                stored["context"] = dump_value(options.context, what="the context")
            except JournalSerializationError as exc:
                raise JournalSerializationError(
                    f"Runner.start stores the run's context for the worker that runs it, and "
                    f"this one cannot be stored: {exc.path}: {exc.leaf}. Give a context of "
                    "JSON data, a pydantic model or a dataclass of those (its module imported "
                    "by the worker), or none; nothing was stored.",
                    path=exc.path,
                    leaf=exc.leaf,
                ) from exc
        chosen = check_run_id(run_id) if run_id is not None else new_run_id()
        spec = self._spec(
            agent,
            input,
            options,
            mode="start",
            chosen=chosen,
            agent_ref=agent_ref,
            queue=queue,
            stored=stored,
        )
        return await self.engine.enqueue_run(spec)

    def durability(self) -> Durability:
        """`runplane.DurableCapabilities` for this backend's runs (the conformance suite's
        durability profile uses it); see runtime/durability.py."""
        return Durability(self.engine)

    async def get_run(self, run_id: str) -> RunRecord:
        return await self.engine.get_run(run_id)

    async def list_runs(
        self, *, limit: int = 50, status: RunStatus | None = None
    ) -> list[RunRecord]:
        return await self.engine.list_runs(limit=limit, status=status)

    async def cancel(self, run_id: str, *, mode: CancelMode = "immediate") -> RunRecord:
        """Cancel run `run_id`, wherever it executes (`Engine.cancel_run`)."""
        return await self.engine.cancel_run(run_id, mode=mode)

    def conversation_session(self, conversation_id: str) -> DurableSession:
        """The session of conversation `conversation_id`, kept in this backend's database (the
        optional protocol a host context asks a backend for its sessions with). Run each turn
        under `conversation_turn_id(conversation_id, n)` so a host started again resumes it."""
        return DurableSession(conversation_id, engine=self.engine)

    def conversation_turn(
        self, conversation_id: str, n: int
    ) -> contextlib.AbstractContextManager[str]:
        """Runs started inside are turn `n` of the conversation, under
        `conversation_turn_id(conversation_id, n)`: a turn cut off by a crash resumes when run
        again. Yields the run id."""
        return conversation_turn(conversation_id, n)

    async def conversation_turns(self, conversation_id: str) -> list[RunRecord]:
        """The runs of the conversation's turns so far, turn 0 first (one read per turn): a host
        started again goes on at turn `len(turns)`, after resuming the last one (with
        `Runner.resume`, which knows its input) if it did not complete."""
        turns: list[RunRecord] = []
        while True:
            try:
                turns.append(
                    await self.engine.get_run(conversation_turn_id(conversation_id, len(turns)))
                )
            except RunNotFoundError:
                return turns


@contextlib.contextmanager
def _reserve(issued: str | None) -> Generator[str, None, None]:
    """The id of the run started inside: `issued`, the stopped run a RunState passed in
    continues, else the one reserved (as any run takes one: a tool call's nested runs count)."""
    with reserve_run_id() as chosen:
        yield chosen if issued is None else issued


def _continues_anew(record: RunRecord) -> bool:
    """Whether continuing stopped run `record` starts a stretch of its own: its last
    continuation ended (stopped for approval again, or failed), so the state goes on afresh; a
    run still `running` (its process died in a continuation) replays that one instead."""
    return record.status in ("awaiting_approval", "failed")


def _spec_of(record: RunRecord) -> RunSpec:
    """The spec that opens `record` again (its own agent, input and options)."""
    return RunSpec(
        run_id=record.id,
        agent_name=record.agent_name,
        input=record.input,
        input_fingerprint=record.input_fingerprint,
        options=record.options,
        agent_ref=record.agent_ref,
        queue=record.queue,
        claim_status=claim_status_for(record.id),
    )


def _waiting(result: RunResult | RunResultStreaming, ordinal: int) -> list[PendingCall]:
    """The calls a run stopped to have approved: not in flight, waiting for a decision."""
    return [
        PendingCall(call_id, item.tool_name or "", tool_key(ordinal, call_id))
        for item in result.interruptions
        if isinstance(call_id := item.call_id, str)
    ]


async def _ready(value: T) -> T:
    return value


async def _stop(task: asyncio.Future[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class _Lazy:
    """An awaitable that starts its coroutine on first await and shares the outcome."""

    def __init__(self, start: Callable[[], Awaitable[RunSession]]) -> None:
        self._start = start
        self._task: asyncio.Future[RunSession] | None = None

    def __await__(self) -> Generator[Any, None, RunSession]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._start())
        return self._task.__await__()


class _Stream:
    """What the caller did to one streamed run, told apart from what the SDK did for it.

    The SDK's `stream_events()` calls `result.cancel()` itself when the task consuming it is
    cancelled (a `wait_for` timeout, Ctrl-C under `asyncio.run`, a web client that went away).
    That stops the run, but it is an interruption, not the caller's decision to end the run: only
    a `cancel()` made while no consumer is inside the SDK's stream is the caller's own (so is the
    one a cancel from another process makes, through `cancel.Stopper`).
    """

    def __init__(self) -> None:
        self.pulling: set[asyncio.Task[Any] | None] = set()  # consumers inside the SDK's stream
        self.cancelled_by_caller = False


async def _outlive(task: asyncio.Future[Any]) -> None:
    """Wait until the run's task is done, whatever it ends with.

    If this wait is cancelled, the event loop is being torn down (`asyncio.run` ending after
    Ctrl-C, or with the stream abandoned): the run is stopped too, and still waited for, so the
    outcome recorded is the one the run reached, never an end it did not reach.
    """
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            task.cancel()


def _watch_stream(result: RunResultStreaming, settled: asyncio.Task[None], stream: _Stream) -> None:
    """End the consumer's stream only once the outcome is committed; see who calls cancel()."""
    original_events: Callable[[], AsyncIterator[StreamEvent]] = result.stream_events
    original_cancel = result.cancel

    async def stream_events() -> AsyncIterator[StreamEvent]:
        try:
            async with contextlib.aclosing(
                cast(AsyncGenerator[StreamEvent, None], original_events())
            ) as events:
                while True:
                    consumer = asyncio.current_task()  # per event: a stream may change hands
                    stream.pulling.add(consumer)
                    try:
                        event = await events.__anext__()
                    except StopAsyncIteration:
                        break
                    finally:
                        stream.pulling.discard(consumer)
                    yield event
        finally:
            await asyncio.shield(settled)

    def cancel(mode: Literal["immediate", "after_turn"] = "immediate") -> None:
        caller = _current_task()
        if caller is None or caller not in stream.pulling:
            stream.cancelled_by_caller = True
        original_cancel(mode)

    result.stream_events = stream_events  # type: ignore[method-assign]
    result.cancel = cancel  # type: ignore[method-assign]


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # called outside the event loop: not from the SDK's stream
        return None
