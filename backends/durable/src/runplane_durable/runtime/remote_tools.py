"""Remote tools: function tools whose calls, in a durable run, execute on workers as tasks.

`remote(tool, queue=...)` returns a copy of a function tool: the same name, description,
parameter schema, approvals, guardrails, `timeout_seconds` and failure handling, so the agent
and the model see the very tool. Only its invocation differs: inside a durable run it enqueues
the call as a task in the run's engine (keyed by the call's journal key, so one call is one
task however often the run resumes) and waits for a worker's result, renewing the run's lease
meanwhile. What comes back is what the tool returned on the worker, and the runtime journals it
exactly as a local tool's output: a replay returns it without enqueuing anything.

What the tool raised on the worker is raised here again (`RemoteToolError`, with the same
message), inside the tool's own failure handling, so the model sees the SDK's failure text as
for a local tool. A task that got no result in its attempts (its workers died or timed out)
fails the call the same way, with a message naming the task, its attempts and the last error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

from agents.tool import FunctionTool, function_tool
from agents.tool_context import ToolContext

from ..engine import Engine, RunSession
from ..errors import JournalSerializationError, RemoteContextError, TaskLeaseLostError
from ..owner import owner_is_dead
from ..records import TaskRecord, TaskSpec
from ..serde import dump_value, load_value, type_name
from . import sdk_internals as sdk
from .active import TOOL_CALL_KEY, TOOL_OF

__all__ = [
    "DEFAULT_QUEUE",
    "RemoteSpec",
    "RemoteToolError",
    "remote",
    "remote_spec",
    "remote_tools",
]

log = logging.getLogger("runplane_durable")

DEFAULT_QUEUE = "default"
# How a waiting run polls its task: soon at first (a fast tool's result is there in a few ms),
# then less and less often, at most every POLL_MAX seconds.
POLL_FIRST = 0.005
POLL_GROWTH = 1.5
POLL_MAX = 0.2
_SPEC = "_runplane_remote"  # the attribute of a remote tool that holds its RemoteSpec


@dataclass(frozen=True)
class RemoteSpec:
    """How a remote tool's calls are executed: the tool as defined (what a worker runs), its
    queue, at most `max_attempts` attempts of at most `timeout` seconds each (None: no limit),
    retried after `retry_delay` seconds doubled per attempt, with the run's context sent to the
    worker unless `send_context` is False."""

    tool: FunctionTool
    queue: str
    max_attempts: int
    timeout: float | None
    retry_delay: float
    send_context: bool


class RemoteToolError(RuntimeError):
    """A remote tool's call failed: the tool raised on its worker (`raised_type` names what it
    raised, and the message is its message), or its task got no result (`raised_type` None).

    Raised inside the tool's failure handling, so the model sees the SDK's failure text, as for
    a local tool that raised; with `failure_error_function=None` the run fails with it.
    """

    def __init__(self, message: str, *, task_id: str, raised_type: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.raised_type = raised_type


_registry: dict[tuple[str, str], FunctionTool] = {}
_registry_lock = threading.Lock()
_warned_local: set[str] = set()


@overload
def remote(
    tool: FunctionTool | Callable[..., Any],
    /,
    *,
    queue: str = ...,
    max_attempts: int = ...,
    timeout: float | None = ...,
    retry_delay: float = ...,
    send_context: bool = ...,
) -> FunctionTool: ...


@overload
def remote(
    tool: None = None,
    /,
    *,
    queue: str = ...,
    max_attempts: int = ...,
    timeout: float | None = ...,
    retry_delay: float = ...,
    send_context: bool = ...,
) -> Callable[[FunctionTool | Callable[..., Any]], FunctionTool]: ...


def remote(
    tool: FunctionTool | Callable[..., Any] | None = None,
    /,
    *,
    queue: str = DEFAULT_QUEUE,
    max_attempts: int = 3,
    timeout: float | None = None,
    retry_delay: float = 1.0,
    send_context: bool = True,
) -> FunctionTool | Callable[[FunctionTool | Callable[..., Any]], FunctionTool]:
    """Make a function tool execute on workers serving `queue`: `remote(tool, queue="gpu")`,
    or as a decorator, `@remote(queue="gpu")` over a function (made a tool with the SDK's
    `function_tool`) or over a `@function_tool`.

    `max_attempts` bounds the attempts a call's task gets when its workers die or time out;
    `timeout` bounds one attempt on a worker (seconds; None: no limit; the tool's own
    `timeout_seconds` still bounds the whole call, as for a local tool); the first retry waits
    `retry_delay` seconds, each further one twice as long before. `send_context=False` sends no
    context to the worker (for a tool that does not use it, in a run whose context cannot be
    sent). The tool is registered, so a worker that imported its module finds it
    (`remote_tools(queue)`).
    """
    _check(queue, max_attempts, timeout, retry_delay)

    def make(target: FunctionTool | Callable[..., Any]) -> FunctionTool:
        if not isinstance(target, FunctionTool):
            if not callable(target):
                raise TypeError(
                    f"remote() takes a function tool or a function, got {type(target).__name__}"
                )
            target = function_tool(target)
        known = remote_spec(target)
        original = known.tool if known is not None else target
        spec = RemoteSpec(original, queue, max_attempts, timeout, retry_delay, send_context)
        return _register(_copy(spec))

    return make if tool is None else make(tool)


def _check(queue: str, max_attempts: int, timeout: float | None, retry_delay: float) -> None:
    if not isinstance(queue, str) or not queue or len(queue) > 200 or "\x00" in queue:
        raise ValueError(f"a queue is a name of 1 to 200 characters without NUL, got {queue!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be a whole number of at least 1, got {max_attempts!r}")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if not (math.isfinite(retry_delay) and retry_delay >= 0):
        raise ValueError(f"retry_delay must be 0 or more seconds, got {retry_delay!r}")


def _copy(spec: RemoteSpec) -> FunctionTool:
    """The tool as the run holds it: the original, but invoked through the engine."""

    async def dispatch(context: ToolContext[Any], arguments: str) -> Any:
        run = TOOL_OF.get()
        key = TOOL_CALL_KEY.get()
        if run is None or key is None or run.engine is None:
            _say_local(spec.tool.name)
            return await sdk.raising_implementation(spec.tool)(context, arguments)
        session = await run.session()
        return await _call(spec, run.engine, session, key, context, arguments)

    copy = dataclasses.replace(spec.tool, on_invoke_tool=sdk.failure_handled(spec.tool, dispatch))
    setattr(copy, _SPEC, spec)
    return copy


def _say_local(name: str) -> None:
    if name not in _warned_local:
        _warned_local.add(name)
        log.warning(
            "remote tool %r was called outside a durable run: it runs in this process", name
        )


def _register(tool: FunctionTool) -> FunctionTool:
    spec = remote_spec(tool)
    assert spec is not None
    with _registry_lock:
        before = _registry.get((spec.queue, tool.name))
        if before is not None and (
            before.description != tool.description
            or before.params_json_schema != tool.params_json_schema
        ):
            log.warning(
                "remote tool %r on queue %r is defined twice, differently; workers run the one "
                "defined last",
                tool.name,
                spec.queue,
            )
        _registry[(spec.queue, tool.name)] = tool
    return tool


def remote_spec(tool: Any) -> RemoteSpec | None:
    """How `tool` executes remotely, or None for a tool that is not remote."""
    spec = getattr(tool, _SPEC, None)
    return spec if isinstance(spec, RemoteSpec) else None


def remote_tools(queue: str = DEFAULT_QUEUE) -> dict[str, FunctionTool]:
    """The remote tools for `queue` defined in this process so far (by the modules it
    imported), by name: what a worker serving the queue passes to `serve_tool_tasks`."""
    with _registry_lock:
        return {name: tool for (q, name), tool in _registry.items() if q == queue}


async def _call(
    spec: RemoteSpec,
    engine: Engine,
    session: RunSession,
    key: str,
    context: ToolContext[Any],
    arguments: str,
) -> Any:
    """Enqueue the call (or find the task it enqueued before) and wait for its outcome."""
    task = await engine.enqueue_task(
        TaskSpec(
            run_id=session.record.id,
            call_key=key,
            queue=spec.queue,
            tool_name=spec.tool.name,
            call_id=context.tool_call_id,
            arguments=arguments,
            context=_sent_context(spec, context),
            max_attempts=spec.max_attempts,
            timeout=spec.timeout,
            retry_delay=spec.retry_delay,
        )
    )
    task = await _settled(engine, session, task)
    if task.status == "failed" or task.result is None:
        raise RemoteToolError(
            f"remote tool {spec.tool.name!r} got no result: its task {task.id} on queue "
            f"{task.queue!r} failed after {task.attempts} attempt(s) (at most "
            f"{task.max_attempts}); the last one: {task.error}",
            task_id=task.id,
        )
    if task.result.kind == "ok":
        return load_value(task.result.output)
    raise RemoteToolError(
        task.result.error or "", task_id=task.id, raised_type=task.result.error_type
    )


def _sent_context(spec: RemoteSpec, context: ToolContext[Any]) -> Any | None:
    """The run's context, encoded for the worker; RemoteContextError if it cannot be."""
    value = context.context
    if not spec.send_context or value is None:
        return None
    try:
        return dump_value(value, what="the run's context", path="context")
    except JournalSerializationError as exc:
        raise RemoteContextError(
            tool=spec.tool.name, context_type=type_name(type(value)), path=exc.path, leaf=exc.leaf
        ) from None


async def _settled(engine: Engine, session: RunSession, task: TaskRecord) -> TaskRecord:
    """Poll the task until it is completed or failed, with backoff, checking the run's lease
    (the run's heartbeat renews it; a run that lost it stops waiting with RunLeasedError).

    An attempt found abandoned (its worker died on this host, or its lease expired) is ended
    here, so the task is retried, or fails, without waiting for a worker to notice.
    """
    delay = POLL_FIRST
    while task.status not in ("completed", "failed"):
        reason = task.abandoned(time.time(), owner_is_dead)
        if reason is not None:
            try:
                task = await engine.fail_task(task.held(0), reason)
                continue
            except TaskLeaseLostError:
                pass  # a worker settled it first
        await session.check_lease()
        await asyncio.sleep(delay)
        delay = min(delay * POLL_GROWTH, POLL_MAX)
        task = await engine.get_task(task.id)
    return task
