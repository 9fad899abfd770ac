"""Replaying a recorded run offline with the program's current code (`runplane runs replay`).

The SDK's loop runs the agent on the run's stored input, as a resume would, but in a scratch
session: a read-only `RunSession` holding the journal as it was read (by a read-only engine),
which holds no lease and has no way to write. It is the path the runtime already takes to
replay a completed run: every model call and tool call is answered by the journal and checked
against it (`ActiveRun.recorded_model`, `recorded_tool`), and anything the journal lacks raises
`ReplayDivergenceError` instead of calling out. So no model and no tool is called, and nothing
is written. What diverged is turned here into the step `runplane runs show` numbers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, RunResult, TResponseInputItem
from agents.memory import SessionSettings

from runplane import RunOptions, sdk_runner

from ..codec import plain_value
from ..engine import Engine
from ..errors import DurableError, ReplayDivergenceError
from ..events import ModelCalled, ToolCalled, parse
from ..records import CancelMode, EventRecord, JournalRecord, RunRecord
from ..serde import dump_display
from . import intercept
from .active import ACTIVE, ActiveRun
from .approvals import restored_state
from .runner import stored_context, stored_input

__all__ = ["Divergence", "NothingToReplayError", "ReplayReport", "replay_run"]


class NothingToReplayError(LookupError):
    """The run has no journal: it never made a model call, so there is nothing to compare."""

    def __init__(self, *, run_id: str, status: str) -> None:
        super().__init__(
            f"run {run_id!r} has no journal to replay (status {status}): it never made a model "
            "call. Replay a run that ran (`runplane runs list`)."
        )
        self.run_id = run_id
        self.status = status


@dataclass(frozen=True)
class Divergence:
    """The first place the code did not do what the record says.

    `step` is the recorded step's number as `runplane runs show` prints it (None when the record
    has no such step: a call it never made); `what` names the call ("model call #2", "tool
    lookup (1:call_a)", "the final output"); `recorded` and `requested` say what the record
    holds and what the code asked for; `changed` what differs, when known."""

    step: int | None
    what: str
    recorded: str | None
    requested: str | None
    changed: str | None = None

    def describe(self) -> str:
        where = f"step {self.step} ({self.what})" if self.step is not None else self.what
        lines = [f"diverged at {where}"]
        if self.recorded != self.requested:  # the same words: `changed` says what differs
            if self.recorded is not None:
                lines.append(f"  the record: {self.recorded}")
            if self.requested is not None:
                lines.append(f"  the code:   {self.requested}")
        if self.changed is not None:
            lines.append(f"  what changed: {self.changed}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ReplayReport:
    """What a replay found: `divergence` None means the code did what the record says."""

    run_id: str
    status: str  # the run's stored status
    model_calls: int  # model responses the replay took from the journal
    tool_outputs: int  # tool outputs it took from the journal
    divergence: Divergence | None
    final_output: Any = None  # the replay's, as the journal stores one (`dump_display`)
    recorded_output: Any = None
    ended: str = ""  # how the replay ended, in words
    notes: tuple[str, ...] = ()

    @property
    def same(self) -> bool:
        return self.divergence is None

    @property
    def steps(self) -> int:
        return self.model_calls + self.tool_outputs

    def describe(self) -> str:
        if self.divergence is not None:
            head = self.divergence.describe()
            steps = "1 step" if self.steps == 1 else f"{self.steps} steps"
            done = f"{steps} replayed the same before it"
            return "\n".join([head, done, *self.notes])
        return "\n".join(
            [f"replayed {self.steps} steps, same as recorded; {self.ended}", *self.notes]
        )


class _ScratchSession:
    """A read-only session over a journal read once: no lease, no writes (the durable runtime
    writes nothing to a `read_only` session; anything that tried would fail here)."""

    read_only = True
    cancel_requested: CancelMode | None = None

    def __init__(self, record: RunRecord, journal: list[JournalRecord]) -> None:
        self.record = record
        self.journal = journal

    def _refuse(self) -> DurableError:
        return DurableError(f"replaying run {self.record.id!r} writes nothing")

    async def append(self, **_: Any) -> None:
        raise self._refuse()

    async def heartbeat(self) -> None:
        raise self._refuse()

    async def poll_cancel(self, *, fresh_within: float = 0.0) -> CancelMode | None:
        return None

    async def check_lease(self) -> None:
        raise self._refuse()

    async def finish(self, status: Any, **_: Any) -> None:
        raise self._refuse()

    async def release(self) -> None:
        raise self._refuse()

    async def close(self) -> None:
        return None


class _ScratchHistory:
    """The `session=` a replay gives a run that used one (its journal holds session steps).

    The SDK builds a run's input from its session's history, so without a session the replayed
    run would ask the model for something else than the run did. Given one, each read, write
    and pop the SDK makes is answered by the journal (a read-only run makes none of them for
    real; one the journal lacks is a divergence): this session is never asked anything, so the
    run's own session is neither read nor written. It refuses anything that reaches it anyway.
    The SDK reads as many items as the session's settings say (`SessionSettings.limit`): a
    property of the run's session (or its RunConfig), not of the agent: taken from its first read.
    """

    session_id: str
    session_settings: SessionSettings | None = None

    def __init__(self, run_id: str, journal: Sequence[JournalRecord]) -> None:
        self.run_id = run_id
        self.session_id = f"runplane-replay:{run_id}"
        reads = [e for e in journal if e.kind == "session" and e.payload.get("op") == "get"]
        limit = reads[0].payload.get("limit") if reads else None
        if isinstance(limit, int) and not isinstance(limit, bool):
            self.session_settings = SessionSettings(limit=limit)

    def _refuse(self) -> DurableError:
        return DurableError(
            f"replaying run {self.run_id!r} reads and writes no session (its journal answers "
            "every session step)"
        )

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        raise self._refuse()

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        raise self._refuse()

    async def pop_item(self) -> TResponseInputItem | None:
        raise self._refuse()

    async def clear_session(self) -> None:
        raise self._refuse()


@dataclass
class _Replaying(ActiveRun):
    """The replay cursor, counting the tool outputs it took from the journal."""

    used_tools: set[str] = field(default_factory=set)

    def recorded_tool(self, key: str) -> Any:
        entry = super().recorded_tool(key)
        self.used_tools.add(key)
        return entry


async def _ready(session: _ScratchSession) -> Any:
    return session


def _steps(events: Sequence[EventRecord]) -> tuple[dict[int, int], dict[str, tuple[int, str]]]:
    """The step (event seq) of each recorded model call (by ordinal) and tool call (by key,
    with the tool's name)."""
    models: dict[int, int] = {}
    tools: dict[str, tuple[int, str]] = {}
    for record in events:
        event = parse(record)
        if isinstance(event, ModelCalled):
            models.setdefault(event.ordinal, record.seq)
        elif isinstance(event, ToolCalled):
            tools.setdefault(event.key, (record.seq, event.name))
    return models, tools


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


async def replay_run(engine: Engine, run_id: str, agent: Agent[Any]) -> ReplayReport:
    """Replay run `run_id` (read through `engine`, which may be read-only: nothing is written)
    with `agent` as the program defines it now; the report says whether it did the same.

    RunNotFoundError for an unknown run, NothingToReplayError for a run with no journal."""
    record = await engine.get_run(run_id)
    journal = await engine.read_journal(record.id)
    if not journal:
        raise NothingToReplayError(run_id=record.id, status=record.status)
    events = await engine.list_events(record.id)
    snapshot = await engine.load_snapshot(record.id)
    model_steps, tool_steps = _steps(events)
    models = [e for e in journal if e.kind == "model"]
    tools = {e.key for e in journal if e.kind == "tool"}
    finished = record.status == "completed"
    session = _ScratchSession(record, journal)
    active = _Replaying(opening=_ready(session), streamed=False)
    context = stored_context(record)
    options: RunOptions[Any] = RunOptions(
        context=context,
        max_turns=record.options.get("max_turns"),
        previous_response_id=record.options.get("previous_response_id"),
        auto_previous_response_id=bool(record.options.get("auto_previous_response_id")),
        conversation_id=record.options.get("conversation_id"),
        session=_ScratchHistory(record.id, journal)
        if any(e.kind == "session" for e in journal)
        else None,
    )
    notes: list[str] = []

    def report(divergence: Divergence | None, ended: str = "", output: Any = None) -> ReplayReport:
        return ReplayReport(
            run_id=record.id,
            status=record.status,
            model_calls=active.model_ordinal,
            tool_outputs=len(active.used_tools),
            divergence=divergence,
            final_output=output,
            recorded_output=record.final_output,
            ended=ended,
            notes=tuple(notes),
        )

    intercept.install()
    await active.session()
    try:
        result = await _loop(active, agent, await stored_input(record, agent), options)
        if result.interruptions and snapshot is not None and snapshot.model_calls < len(models):
            # The run stopped for approval and went on once decided: the rest of the journal
            # is replayed from the state it stopped in, with the decisions stored for it.
            if snapshot.model_calls > active.model_ordinal:
                first, last = active.model_ordinal + 1, snapshot.model_calls
                calls = f"model call #{first}" if first == last else f"model calls #{first}-#{last}"
                notes.append(
                    f"(the run stopped for approval more than once; {calls} and the tools "
                    "between the stops were not compared: only the last stop's state is stored)"
                )
                skipped = range(active.model_ordinal, snapshot.model_calls)
                active.used_tools.update(k for k in tools if _ordinal(k) in skipped)
            active.model_ordinal = snapshot.model_calls
            active.begin_session_segment()  # the SDK reads and writes its session anew
            state = await restored_state(record.id, agent, snapshot, context)
            result = await _loop(active, agent, state, dataclasses.replace(options, context=None))
    except ReplayDivergenceError as exc:
        found = _diverged(exc, finished, model_steps, models)
        if found is None:
            return report(
                None,
                f"the record ends there: the run is {record.status}, so its next step would be "
                "live (not replayed)",
            )
        return report(found)
    except DurableError:
        raise
    except Exception as exc:
        if record.status == "failed" and record.error_type == _qualified(exc):
            return report(None, f"it failed as recorded: {record.error_type}: {exc}")
        if record.status == "failed":
            recorded = f"failed with {record.error_type}: {record.error}"
        else:
            recorded = f"status {record.status}"
        return report(
            Divergence(
                step=None,
                what="the run's end",
                recorded=recorded,
                requested=f"raised {_qualified(exc)}: {exc}",
            )
        )
    # Whatever the record holds that the code never asked for.
    if active.model_ordinal < len(models):
        ordinal = active.model_ordinal
        return report(
            Divergence(
                step=model_steps.get(ordinal),
                what=f"model call #{ordinal + 1}",
                recorded=str(models[ordinal].payload.get("describe", "a model call")),
                requested="no model call: the run ended before it",
            )
        )
    unused = sorted(tools - active.used_tools, key=lambda k: tool_steps.get(k, (0, ""))[0])
    if unused:
        seq, name = tool_steps.get(unused[0], (None, "?"))
        return report(
            Divergence(
                step=seq,
                what=f"tool {name} ({unused[0]})",
                recorded=f"tool call {unused[0]} of {name}",
                requested="the code never ran it",
            )
        )
    if result.interruptions:
        waiting = ", ".join(i.tool_name or "?" for i in result.interruptions)
        if record.status in ("awaiting_approval", "running"):
            return report(None, f"it stops for approval of {waiting}, as recorded")
        return report(
            Divergence(
                step=None,
                what="the run's end",
                recorded=f"status {record.status}",
                requested=f"it stops for approval of {waiting}",
            )
        )
    output = dump_display(result.final_output)
    if not finished:
        return report(
            None,
            f"it completes now (the record is {record.status}, without an outcome)",
            output,
        )
    if output != record.final_output:
        return report(
            Divergence(
                step=None,
                what="the final output",
                recorded=_short(record.final_output),
                requested=_short(output),
            ),
            output=output,
        )
    return report(None, f"the final output is the same: {_short(output)}", output)


def _ordinal(key: str) -> int | None:
    """The model calls before a tool call, from its journal key (`names.tool_key`)."""
    head, _, _ = key.partition(":")
    return int(head) if head.isdigit() else None


async def _loop(active: ActiveRun, agent: Agent[Any], input: Any, options: RunOptions[Any]) -> Any:
    token = ACTIVE.set(active)
    try:  # a task of its own, as a durable run's loop: it copies ACTIVE as set here
        task = asyncio.ensure_future(sdk_runner().run(agent, input, **options.as_kwargs()))
    finally:
        ACTIVE.reset(token)
    result: RunResult = await task
    return result


def _diverged(
    exc: ReplayDivergenceError,
    finished: bool,
    model_steps: dict[int, int],
    models: list[JournalRecord],
) -> Divergence | None:
    """The divergence the runtime's error describes, at the step `runs show` numbers; None
    when an unfinished run's replay only reached the end of what was recorded."""
    if exc.kind == "session":  # a step with no event: named by its number among them
        if exc.recorded is None and not finished:  # past the record's last session step
            return None
        return Divergence(
            step=None,
            what=f"session step #{exc.step}",
            recorded=exc.recorded or "no such step: the recorded run never made it",
            requested=exc.requested,
            changed=exc.what_changed if exc.recorded is not None else None,
        )
    if exc.kind == "tool":
        key = str(exc.step)
        ordinal, _, call_id = key.partition(":")
        at_end = not finished and ordinal == str(len(models))
        if at_end:
            return None
        return Divergence(
            step=None,
            what=f"tool call {key}",
            recorded="no output for it (the recorded run never ran it)",
            requested=f"the tool call {call_id or key}",
        )
    step = int(exc.step)
    if exc.what_changed is None:  # past the journal's last model call
        if not finished:
            return None
        last = model_steps.get(len(models) - 1)
        return Divergence(
            step=None,
            what=f"model call #{step}" + (f", after step {last}" if last is not None else ""),
            recorded="no such call: the recorded run ended before it",
            requested=exc.requested,
        )
    return Divergence(
        step=model_steps.get(step - 1),
        what=f"model call #{step}",
        recorded=exc.recorded,
        requested=exc.requested,
        changed=exc.what_changed,
    )


def _short(value: Any, limit: int = 300) -> str:
    """A stored value (`dump_display`'s form) as people read it."""
    shown = plain_value(value)
    text = shown if isinstance(shown, str) else json.dumps(shown, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
