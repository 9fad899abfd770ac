"""`bridge(result)`: a streamed run's host events as an async iterator."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from agents import RunResultStreaming
from agents.stream_events import StreamEvent

from ..observe import run_id_of
from .events import HostEvent
from .translate import Bridge

__all__ = ["bridge"]


def bridge(
    result: RunResultStreaming, *, run_id: str | None = None, input: object = None
) -> AsyncIterator[HostEvent]:
    """Iterate `result.stream_events()` and yield the run's host events as they happen.

    The first event is `RunStarted`, the last exactly one terminal event: `RunFinished`, or, when
    the stream raises, `RunFailed` / `RunCancelled`, after which the error is raised again, so
    an `async for` ends the way the run did. `run_id` names the run in the events (default: the
    run's `RunInfo.run_id` when runplane started it, as the hooks name it, else a random hex).
    Pass the RunState a run resumes from as `input` to be told the approval decisions it carries
    (`ApprovalDecided`) and not to be told its earlier items again.

    A plain function: the RunState is read when `bridge()` is called, so call it right after
    `run_streamed()`, before awaiting anything (the run changes the state in place).
    """
    if not isinstance(result, RunResultStreaming):
        raise TypeError(
            f"bridge() takes the RunResultStreaming of Runner.run_streamed(), not "
            f"{type(result).__name__}; for a finished run use Bridge(...).from_result(result)"
        )
    run_id = run_id or run_id_of(result) or uuid.uuid4().hex
    translator = Bridge(run_id=run_id, agent_name=result.current_agent.name)
    return _events(result, translator, translator.on_start(input))


async def _events(
    result: RunResultStreaming, translator: Bridge, started: list[HostEvent]
) -> AsyncIterator[HostEvent]:
    for event in started:
        yield event
    try:
        # aclosing: if our consumer stops early, the SDK's stream is closed at once, in this task.
        stream = cast("AsyncGenerator[StreamEvent, Any]", result.stream_events())
        async with contextlib.aclosing(stream) as events:
            async for stream_event in events:
                for event in translator.on_stream_event(stream_event):
                    yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        for event in translator.on_error(exc):
            yield event
        raise
    for event in translator.on_result(result):
        yield event
