"""Serving remote tool tasks: claim them under a lease, run each tool with a real ToolContext,
post its result, fenced by the attempt's lease.

A task is executed at least once (a worker that dies mid-task loses its lease and the task is
retried, up to its max_attempts) and its result is recorded once: a late result from an attempt
that lost the task is refused (`TaskLeaseLostError`), never written over the one recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.tool import FunctionTool
from agents.tool_context import ToolContext
from openai.types.responses import ResponseFunctionToolCall

from ..engine import Engine
from ..errors import DurableError, TaskLeaseLostError
from ..owner import current_owner, retire
from ..records import TaskLease, TaskRecord, TaskResult
from ..runtime import sdk_internals as sdk
from ..runtime import tool_outputs
from ..runtime.remote_tools import remote_spec
from ..serde import load_value, storable_text, type_name

__all__ = ["DEFAULT_TASK_LEASE_SECONDS", "serve_tool_tasks"]

log = logging.getLogger("runplane_durable")

DEFAULT_TASK_LEASE_SECONDS = 30.0
# An idle worker asks for a task again after IDLE_FIRST seconds, doubling up to IDLE_MAX.
IDLE_FIRST = 0.01
IDLE_MAX = 0.1


async def serve_tool_tasks(
    engine: Engine,
    tools: Mapping[str, FunctionTool],
    *,
    queue: str,
    stop: asyncio.Event,
    concurrency: int = 4,
    lease_seconds: float = DEFAULT_TASK_LEASE_SECONDS,
) -> None:
    """Run the tasks of `queue` for `tools` (by name; remote tools or plain function tools),
    at most `concurrency` at once, until `stop` is set; then finish the attempts under way
    and return.

    Each attempt holds its task under a lease of `lease_seconds`, renewed every third of it;
    the tool runs with a `ToolContext` holding the call's name, id and arguments and the run's
    context rebuilt (from a class this process has imported: a task never makes a worker import
    anything). Cancelling this coroutine cancels the attempts under way; their tasks are retried.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if not lease_seconds > 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
    runnable = _runnable(tools)
    names = sorted(runnable)
    running: set[asyncio.Future[Any]] = set()
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    idle = IDLE_FIRST
    try:
        while not stop.is_set():
            if len(running) >= concurrency:
                await asyncio.wait({*running, stopping}, return_when=asyncio.FIRST_COMPLETED)
                continue
            owner = current_owner()
            task: TaskRecord | None = None
            try:
                task = await engine.claim_task(
                    queue=queue, tools=names, owner=owner, lease_seconds=lease_seconds
                )
            except DurableError:  # the database went away for a moment: ask again later
                log.warning("claiming a task on queue %r failed", queue, exc_info=True)
            if task is None:
                retire(owner)
                await asyncio.wait({stopping}, timeout=idle)
                idle = min(idle * 2, IDLE_MAX)
                continue
            idle = IDLE_FIRST
            attempt: asyncio.Future[None] = asyncio.ensure_future(
                _attempt(engine, runnable[task.tool_name], task, owner, lease_seconds)
            )
            running.add(attempt)
            attempt.add_done_callback(running.discard)
        await asyncio.gather(*running, return_exceptions=True)
    finally:
        stopping.cancel()
        for attempt in running:
            attempt.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _runnable(tools: Mapping[str, FunctionTool]) -> dict[str, FunctionTool]:
    """The tools as a worker runs them: a remote tool's original, by name."""
    if not tools:
        raise ValueError("serve_tool_tasks needs at least one tool to serve")
    runnable: dict[str, FunctionTool] = {}
    for name, tool in tools.items():
        if not isinstance(tool, FunctionTool):
            raise TypeError(f"tool {name!r} is a {type(tool).__name__}, not a FunctionTool")
        if name != tool.name:
            raise ValueError(f"tool {tool.name!r} is given under another name, {name!r}")
        spec = remote_spec(tool)
        runnable[name] = spec.tool if spec is not None else tool
    return runnable


@dataclass
class _State:
    posting: bool = False  # the outcome is being written: a lost lease no longer cancels it
    lost: bool = False  # a heartbeat found another attempt holding the task


class _NoResult(Exception):
    """The attempt ends without running the tool to a result (why: the message)."""


async def _attempt(
    engine: Engine, tool: FunctionTool, task: TaskRecord, owner: str, lease_seconds: float
) -> None:
    lease = task.held(lease_seconds)
    state = _State()
    work = asyncio.current_task()
    assert work is not None
    beat = asyncio.ensure_future(_heartbeat(engine, lease, work, state))
    log.info(
        "task %s: tool %r, attempt %d of %d (run %s)",
        task.id,
        task.tool_name,
        task.attempts,
        task.max_attempts,
        task.run_id,
    )
    try:
        try:
            result = await _run(tool, task)
        except _NoResult as exc:
            state.posting = True
            await engine.fail_task(lease, str(exc))
            return
        state.posting = True
        await engine.complete_task(lease, result)
    except TaskLeaseLostError as exc:  # a late outcome: refused, the task went on without it
        log.warning("%s", exc)
    except asyncio.CancelledError:
        if state.lost:  # our heartbeat stopped the tool: the task is another attempt's now
            log.warning("task %s: attempt %d lost its lease; its tool was stopped", *_id(lease))
            return
        with contextlib.suppress(DurableError):  # the worker is stopping: retry it elsewhere
            await asyncio.shield(engine.fail_task(lease, "the worker stopped during it"))
        raise
    except DurableError:
        log.warning("task %s: attempt %d could not record its outcome", *_id(lease), exc_info=True)
    finally:
        beat.cancel()
        retire(owner)


def _id(lease: TaskLease) -> tuple[str, int]:
    return lease.task_id, lease.attempt


async def _heartbeat(
    engine: Engine, lease: TaskLease, work: asyncio.Task[Any], state: _State
) -> None:
    while True:
        await asyncio.sleep(lease.lease_seconds / 3)
        try:
            await engine.heartbeat_task(lease)
        except TaskLeaseLostError:
            state.lost = True
            if not state.posting:
                work.cancel()
            return
        except Exception:  # a missed beat is retried; the lease outlives two of them
            log.warning("heartbeat of task %s failed", lease.task_id, exc_info=True)


async def _run(tool: FunctionTool, task: TaskRecord) -> TaskResult:
    """The tool run once with a real ToolContext: its output, encoded, or what it raised."""
    try:
        context = None if task.context is None else load_value(task.context)
    except Exception as exc:
        raise _NoResult(f"this worker could not rebuild the run's context: {exc}") from exc
    call = ResponseFunctionToolCall(
        type="function_call", call_id=task.call_id, name=task.tool_name, arguments=task.arguments
    )
    ctx: ToolContext[Any] = ToolContext(
        context,
        tool_name=task.tool_name,
        tool_call_id=task.call_id,
        tool_arguments=task.arguments,
        tool_call=call,
    )
    invoke = sdk.raising_implementation(tool)
    try:
        if task.timeout is None:
            output = await invoke(ctx, task.arguments)
        else:
            output = await _within(invoke(ctx, task.arguments), task.timeout)
    except _NoResult:
        raise
    except Exception as exc:
        return _raised(exc)
    encoded = tool_outputs.encode(tool, ctx, output)
    if encoded is None:  # the SDK itself makes no tool output of it
        return TaskResult(
            "error",
            error_type="TypeError",
            error=f"tool {task.tool_name!r} returned a {type_name(type(output))}, which the SDK "
            "cannot make a tool output of",
        )
    return TaskResult("ok", output=encoded[0])


async def _within(call: Awaitable[Any], seconds: float) -> Any:
    """`call`'s outcome, or _NoResult once it ran `seconds` (it is cancelled then); a
    TimeoutError the tool raised itself is its own failure, not the attempt's."""
    running = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({running}, timeout=seconds)
    if not done:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        raise _NoResult(f"it ran longer than its timeout of {seconds:g} s")
    return running.result()


def _raised(error: Exception) -> TaskResult:
    return TaskResult("error", error_type=type_name(type(error)), error=storable_text(str(error)))
