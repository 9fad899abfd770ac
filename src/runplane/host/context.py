"""`HostContext`: a host application's multi-turn conversation with one agent, on any backend.

It is d:spatch's `OpenAiAgentContext` made whole: the agent is built from the host's system
prompt, tools and model options; each prompt is one streamed run through the selected backend,
its events bridged to the host as they happen; the conversation's history is a session, so it
holds over Chat Completions endpoints too; the authority is an enforced approval policy (its text
also told to the model); a turn that fails is reported and the conversation goes on.
"""

from __future__ import annotations

import contextlib
import inspect
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, cast

from agents import Agent, RunResultStreaming, RunState, Session, ToolApprovalItem
from agents.items import TResponseInputItem
from agents.tool import Tool
from openai import AsyncOpenAI

from .. import policy as policies
from ..bridge import Bridge, HostEvent, RunCancelled, RunFailed, bridge
from ..facade import BackendRunner, Runner, runner
from ..protocol import DEFAULT_MAX_TURNS, RunIdReserving
from .authority import authority_text, load_authority
from .options import HostSetupError, ResolvedModel, resolve
from .sessions import (
    SupportsConversationTurns,
    UnfinishedTurn,
    conversation_session,
    unfinished_turn,
)
from .tools import check_tools
from .turn import TurnResult, output_text, usage_of

__all__ = ["EventHandler", "HostContext"]

EventHandler = Callable[[HostEvent], Any]
"""`on_event`: called with each host event as it happens; may be async (it is awaited)."""


class HostContext:
    """One conversation: `async with HostContext(...) as ctx: await ctx.run("...")`.

    `options` is `ModelOptions`, or any dataclass/namedtuple/dict with a `model` field (loose
    setting fields such as `temperature` are model settings); `client` an `AsyncOpenAI` for any
    OpenAI-compatible endpoint (Chat Completions, or Responses with `api="responses"`);
    `authority` an `ApprovalPolicy` or its TOML file; `backend` a backend name or runner class
    (default: RUNPLANE_BACKEND, else openai); `session` the history's SDK session (default: the
    backend's for `conversation_id` when it provides them, else one in memory).
    """

    def __init__(
        self,
        *,
        system_prompt: str = "",
        tools: Iterable[Tool] = (),
        options: object = None,
        client: AsyncOpenAI | None = None,
        api: str | None = None,
        authority: Any = None,
        backend: str | type[BackendRunner] | None = None,
        session: Session | None = None,
        conversation_id: str | None = None,
        on_event: EventHandler | None = None,
        name: str = "host-agent",
        context: Any = None,
        max_turns: int = DEFAULT_MAX_TURNS,
    ) -> None:
        if not isinstance(system_prompt, str):
            raise HostSetupError(f"system_prompt must be a str, not {type(system_prompt).__name__}")
        self.system_prompt = system_prompt
        self.tools: list[Tool] = check_tools(tools)
        self.model: ResolvedModel = resolve(options, client, api)
        self.policy = load_authority(authority)
        self.runner: type[BackendRunner] = _runner_class(backend)
        if on_event is not None and not callable(on_event):
            raise HostSetupError(f"on_event must be callable, not {type(on_event).__name__}")
        self.on_event = on_event
        self.name = name
        self.conversation_id = conversation_id
        self.context = context
        self.max_turns = max_turns
        self._given_session = session
        self._session: Session | None = None
        self._owns_session = False
        self._agent: Agent[Any] | None = None
        self._pending: tuple[RunState[Any], list[ToolApprovalItem]] | None = None
        self._current: RunResultStreaming | None = None
        self.turns: list[TurnResult] = []
        self._next_turn = 0  # the number of the next turn, on a backend that keeps turns
        self._unfinished: UnfinishedTurn | None = None

    # -- setup -----------------------------------------------------------------------------------

    @property
    def instructions(self) -> str:
        """The system prompt the model gets: the host's, and the authority's text after it."""
        if self.policy is None:
            return self.system_prompt
        text = authority_text(self.policy)
        return f"{self.system_prompt}\n\n{text}" if self.system_prompt else text

    async def __aenter__(self) -> HostContext:
        agent: Agent[Any] = Agent(
            name=self.name,
            instructions=self.instructions,
            tools=list(self.tools),
            model=self.model.model,
            model_settings=self.model.settings,
        )
        self._agent = policies.apply(agent, self.policy) if self.policy is not None else agent
        if self._given_session is not None:
            self._session, self._owns_session = self._given_session, False
        else:
            self._session, self._owns_session = conversation_session(
                self.runner.backend(), self.conversation_id
            )
        self.conversation_id = self._session.session_id
        keeper = self._turn_keeper()
        if keeper is not None:
            # A conversation this backend keeps: go on after its last turn, and offer a turn
            # cut off when the host stopped (killed mid-turn) to `resume()`.
            turns = await keeper.conversation_turns(self.conversation_id)
            self._unfinished = unfinished_turn(turns)
            self._next_turn = len(turns) - (1 if self._unfinished is not None else 0)
        return self

    def _turn_keeper(self) -> SupportsConversationTurns | None:
        """The backend, when it keeps this conversation's turns: only with its own session (a
        session the host passes in keeps a history the backend's turns know nothing of)."""
        if self._given_session is not None:
            return None
        backend = self.runner.backend()
        return backend if isinstance(backend, SupportsConversationTurns) else None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._current is not None:
            self._current.cancel()
        close = getattr(self._session, "close", None)
        if self._owns_session and callable(close):
            close()
        self._agent = None

    @property
    def agent(self) -> Agent[Any]:
        """The agent the turns run (under the policy when there is one)."""
        if self._agent is None:
            raise HostSetupError(
                "the host context is not open: use `async with ctx:` (it builds the agent and "
                "its session) before running turns"
            )
        return self._agent

    @property
    def session(self) -> Session:
        """The session holding the conversation's history."""
        self.agent  # noqa: B018 - raises the not-open error
        assert self._session is not None
        return self._session

    @property
    def next_turn(self) -> int:
        """The number the next new turn of this conversation gets (0 for a new conversation;
        on a backend that keeps turns, the turns recorded before this host context count)."""
        return self._next_turn

    @property
    def unfinished_turn(self) -> UnfinishedTurn | None:
        """The turn cut off when this conversation's host last stopped (on a backend that keeps
        turns, the durable one): `await ctx.resume()` finishes it without repeating its recorded
        model calls or completed tools; `ctx.discard_unfinished()` leaves it as it is."""
        return self._unfinished

    async def resume(self) -> TurnResult:
        """Finish the turn cut off when the host stopped (`unfinished_turn`): its run goes on
        from its journal, its events bridged as for any turn."""
        if self._unfinished is None:
            raise HostSetupError(
                "no turn of this conversation was cut off (ctx.unfinished_turn is None)"
            )
        prompt = self._unfinished.prompt
        self._unfinished = None
        async for _ in self._turn(prompt, None):
            pass
        return self.turns[-1]

    def discard_unfinished(self) -> None:
        """Go on without the cut-off turn (it stays recorded as it was; its calls do not run
        again); the next prompt is a turn of its own."""
        if self._unfinished is not None:
            self._unfinished = None
            self._next_turn += 1

    @property
    def pending_approvals(self) -> list[ToolApprovalItem]:
        """The calls the last turn waits on (empty when it does not wait)."""
        return list(self._pending[1]) if self._pending is not None else []

    # -- turns -----------------------------------------------------------------------------------

    async def run(self, prompt: str | list[TResponseInputItem]) -> TurnResult:
        """One turn: the prompt through the backend, streamed, events to `on_event`."""
        async for _ in self.stream(prompt):
            pass
        return self.turns[-1]

    def stream(self, prompt: str | list[TResponseInputItem]) -> AsyncIterator[HostEvent]:
        """One turn, as its host events; `ctx.turns[-1]` is its `TurnResult` once it ends.

        To stop a turn early, close the iterator (`await events.aclose()`, or iterate inside
        `contextlib.aclosing(...)`): its run is cancelled and the conversation goes on.
        """
        if not isinstance(prompt, (str, list)):
            raise HostSetupError(
                f"a prompt is a str (or a list of input items), not {type(prompt).__name__}"
            )
        self._refuse_while_waiting()
        return self._turn(prompt, None)

    async def conversation(self) -> AsyncGenerator[TurnResult | None, str | None]:
        """d:spatch's loop: `prompt = yield`; send a prompt, get its TurnResult; None ends.

        chat = ctx.conversation()
        await chat.asend(None)                  # start it
        turn = await chat.asend("Hello")        # one turn
        await chat.aclose()                     # or asend(None): StopAsyncIteration
        """
        prompt = yield None
        while prompt is not None:
            prompt = yield await self.run(prompt)

    def cancel(self) -> None:
        """Cancel the running turn (it ends with RunCancelled; the conversation goes on)."""
        if self._current is not None:
            self._current.cancel()

    # -- approvals -------------------------------------------------------------------------------

    async def approve(self, call_id: str | None = None, *, always: bool = False) -> TurnResult:
        """Approve one waiting call (every one when None) and continue the turn."""
        ids = [call_id] if call_id is not None else self._waiting_ids()
        return await self.decide(approve=ids, always=always)

    async def reject(self, call_id: str | None = None, *, message: str | None = None) -> TurnResult:
        """Reject one waiting call (every one when None) and continue; the model gets `message`."""
        ids = [call_id] if call_id is not None else self._waiting_ids()
        return await self.decide(reject={i: message for i in ids})

    async def decide(
        self,
        approve: Iterable[str] = (),
        reject: Mapping[str, str | None] | None = None,
        *,
        always: bool = False,
    ) -> TurnResult:
        """Decide several waiting calls at once, then continue the turn (on the same run: the
        SDK's pattern of passing the state back, which the durable backend continues under its
        run id). Calls left undecided stop the continued turn again."""
        if self._pending is None:
            raise HostSetupError("no turn waits for approval (TurnResult.interruptions is empty)")
        state, items = self._pending
        by_id = {str(item.call_id): item for item in items}
        reject = dict(reject or {})
        approve = list(approve)
        unknown = [c for c in [*approve, *reject] if c not in by_id]
        if unknown:
            raise HostSetupError(
                f"call {unknown[0]!r} does not wait for approval; the turn waits for "
                f"{', '.join(map(repr, by_id)) or 'nothing'}"
            )
        both = set(approve) & set(reject)
        if both:
            raise HostSetupError(f"call {sorted(both)[0]!r} is both approved and rejected")
        for call_id in approve:
            state.approve(by_id[call_id], always_approve=always)
        for call_id, message in reject.items():
            state.reject(by_id[call_id], rejection_message=message)
        self._pending = None
        # The bridge tells the decisions the state carries as ApprovalDecided, first. On a
        # backend that names its runs (the durable one) the continued run is the waiting one,
        # under its id, so its events keep that id; elsewhere it is a new run of the SDK's.
        waiting = self.turns[-1].events
        same_run = isinstance(self.runner.backend(), RunIdReserving) and bool(waiting)
        async for _ in self._turn(state, waiting[0].run_id if same_run else None):
            pass
        return self.turns[-1]

    def _waiting_ids(self) -> list[str]:
        return [str(item.call_id) for item in self.pending_approvals]

    def _refuse_while_waiting(self) -> None:
        if self._unfinished is not None:
            turn = self._unfinished
            raise HostSetupError(
                f"turn {turn.number} of conversation {self.conversation_id!r} (run "
                f"{turn.run_id}) was cut off when its host stopped: `await ctx.resume()` "
                "finishes it (its recorded steps are not repeated), or ctx.discard_unfinished() "
                "goes on without it"
            )
        if self._pending is not None:
            raise HostSetupError(
                f"the last turn waits for approval of {', '.join(self._waiting_ids())}: decide "
                "with ctx.approve(call_id) / ctx.reject(call_id) (they continue the turn), or "
                "ctx.discard_pending() to drop it"
            )
        if self._current is not None:
            raise HostSetupError("a turn is running already; one turn at a time")

    def discard_pending(self) -> None:
        """Drop a turn waiting for approval without deciding it (its calls never run)."""
        self._pending = None

    # -- one turn --------------------------------------------------------------------------------

    async def _turn(
        self, input: str | list[TResponseInputItem] | RunState[Any], run_id: str | None
    ) -> AsyncIterator[HostEvent]:
        agent = self.agent
        events: list[HostEvent] = []
        error: BaseException | None = None
        result: RunResultStreaming | None = None
        try:
            keeper = None if isinstance(input, RunState) else self._turn_keeper()
            try:
                # On a backend that keeps turns, a new turn runs under the id of its number in
                # the conversation (a continued one goes on under its own).
                with (
                    keeper.conversation_turn(self.conversation_id or "", self._next_turn)
                    if keeper is not None
                    else contextlib.nullcontext()
                ):
                    result = self.runner.run_streamed(
                        agent,
                        input,
                        context=self.context,
                        max_turns=self.max_turns,
                        session=self._session,
                    )
                if keeper is not None:
                    self._next_turn += 1
            except Exception as exc:  # refused before it started: reported like any failure
                run_id = run_id or uuid.uuid4().hex
                error = exc
                for event in Bridge(run_id=run_id, agent_name=agent.name).on_error(exc):
                    events.append(event)
                    await self._deliver(event)
                    yield event
                return
            self._current = result
            try:
                told_events = cast(
                    "AsyncGenerator[HostEvent, None]", bridge(result, run_id=run_id, input=input)
                )
                async with contextlib.aclosing(told_events) as told:
                    async for event in told:
                        events.append(event)
                        await self._deliver(event)
                        yield event
            except Exception as exc:  # the bridge yielded its RunFailed before re-raising
                # (or on_event raised: the host's own error ends the turn the same way)
                error = exc
                if not events or not isinstance(events[-1], (RunFailed, RunCancelled)):
                    named = run_id or (events[0].run_id if events else uuid.uuid4().hex)
                    for event in Bridge(run_id=named, agent_name=agent.name).on_error(exc):
                        events.append(event)
                        await self._deliver(event)
                        yield event
        finally:
            self._current = None
            if result is not None and not result.is_complete:
                result.cancel()  # left early (an error, the consumer stopped): no orphan run
            self._finish(result, events, error)

    def _finish(
        self,
        result: RunResultStreaming | None,
        events: list[HostEvent],
        error: BaseException | None,
    ) -> None:
        interruptions: list[ToolApprovalItem] = []
        if result is not None and error is None and not _cancelled(events):
            interruptions = list(result.interruptions)
        if interruptions and result is not None:
            self._pending = (result.to_state(), interruptions)
        final = None if (error or interruptions or result is None) else result.final_output
        self.turns.append(
            TurnResult(
                final_output=output_text(final),
                events=tuple(events),
                usage=usage_of(events),
                error=error,
                interruptions=tuple(interruptions),
                result=result,
            )
        )

    async def _deliver(self, event: HostEvent) -> None:
        if self.on_event is None:
            return
        outcome = self.on_event(event)
        if inspect.isawaitable(outcome):
            await outcome


def _cancelled(events: Sequence[HostEvent]) -> bool:
    return bool(events) and isinstance(events[-1], RunCancelled)


def _runner_class(backend: str | type[BackendRunner] | None) -> type[BackendRunner]:
    if backend is None:
        return Runner
    if isinstance(backend, str):
        return runner(backend)
    if isinstance(backend, type) and issubclass(backend, BackendRunner):
        return backend
    raise HostSetupError(
        f"backend must be a backend name, a runner class (runplane.runner(name)) or None, not "
        f"{type(backend).__name__}"
    )
