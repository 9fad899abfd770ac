"""Every private SDK name the durable backend relies on, in one place.

The SDK is pinned (~=0.24.0). These are the seams where a run's non-deterministic steps pass
(model resolution, function-tool invocation), where a failing tool becomes an output (its failure
formatter), where a nested run is started (the SDK's own runner), the helpers that keep a
streamed replay lossless, and the error a streamed run ended with even when no one read it.
`REQUIRED` lists each name with why it is needed; an SDK upgrade that moves one fails the import
here, naming it (`missing()`, tested), and the parity and replay tests say what changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agents import RunResultStreaming, RunState
from agents import tool as tool_module
from agents import usage as _usage
from agents.exceptions import MaxTurnsExceeded
from agents.models.interface import Model
from agents.run import AgentRunner
from agents.run_internal import run_loop, tool_execution
from agents.tool import FunctionTool

__all__ = [
    "FAILURE_FORMATTERS",
    "FUNCTION_TOOL_INVOKER",
    "MODEL_RESOLVER",
    "REQUIRED",
    "RUNNER_METHODS",
    "FunctionToolInvocationResult",
    "Seam",
    "attach_normalized_usage",
    "cleanup_on_run_end",
    "decision_in",
    "failure_handled",
    "missing",
    "output_type_adapter",
    "raising_implementation",
    "request_id",
    "response_usage_to_usage",
    "stream_error",
]

# Turns an exception raised by a function tool into the tool's output (its failure_error_function,
# by default "An error occurred while running the tool"). `agents.tool` calls it by this global
# name when a wrapped tool (function_tool, Agent.as_tool, MCP) fails; tool_execution imported it.
FAILURE_FORMATTER = "maybe_invoke_function_tool_failure_error_function"

# (owner, name, why): every private (or patched) SDK name used, checked at import.
REQUIRED: tuple[tuple[Any, str, str], ...] = (
    (run_loop, "get_model", "resolves every model path of a run: wrapped to journal model calls"),
    (
        tool_execution,
        "_invoke_function_tool_with_metadata",
        "invokes a function tool: wrapped to journal tool outputs",
    ),
    (tool_module, FAILURE_FORMATTER, "turns a tool's exception into its output"),
    (tool_execution, FAILURE_FORMATTER, "the same, as tool_execution imported it"),
    (tool_module, "_FunctionToolInvocationResult", "what an invoked function tool returns"),
    (FunctionTool, "_output_type_adapter", "how a typed tool's output is validated"),
    (Model, "_cleanup_on_run_end", "a model hook a wrapping model must forward"),
    (RunResultStreaming, "_stored_exception", "the error a stream consumer would be raised"),
    (RunResultStreaming, "_max_turns_handled", "whether max_turns was handled by a handler"),
    (_usage, "_response_usage_to_usage", "a stream's terminal usage as the SDK counts it"),
    (_usage, "_attach_normalized_usage", "replayed stream usage, normalized as the SDK does"),
    (_usage, "_REQUEST_WITHOUT_USAGE_ATTR", "the mark of a request that reported no usage"),
    (_usage, "_requests_for_response_without_usage", "reads that mark"),
    (
        tool_module,
        "_FailureHandlingFunctionToolInvoker",
        "a decorated tool's invoker: a remote tool's copy keeps its failure handling, and a "
        "worker runs the implementation it wraps, which raises",
    ),
    (AgentRunner, "run", "the SDK's runner: nested runs are routed to the durable backend"),
    (RunState, "_context", "the decisions a caller made on a RunState it passes back in"),
    (
        RunState,
        "_find_nested_approval_state",
        "where the SDK keeps a decision on a nested `Agent.as_tool` run's call",
    ),
    (AgentRunner, "run_sync", "the same"),
    (AgentRunner, "run_streamed", "the same"),
)


def missing(required: tuple[tuple[Any, str, str], ...] = REQUIRED) -> list[str]:
    """The required names the installed SDK lacks, each as `owner.name: why`."""
    return [
        f"{getattr(owner, '__module__', '') + '.' if isinstance(owner, type) else ''}"
        f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{name}: {why}"
        for owner, name, why in required
        if not hasattr(owner, name)
    ]


if _gone := missing():  # pragma: no cover - only on an unsupported SDK
    raise ImportError(
        "runplane-durable needs openai-agents~=0.24.0; the installed SDK lacks: " + "; ".join(_gone)
    )

FunctionToolInvocationResult: Any = tool_module._FunctionToolInvocationResult
response_usage_to_usage = _usage._response_usage_to_usage
attach_normalized_usage = _usage._attach_normalized_usage
_REQUEST_WITHOUT_USAGE = _usage._REQUEST_WITHOUT_USAGE_ATTR


@dataclass
class Seam:
    """One SDK attribute runplane replaces while it is installed, and puts back."""

    owner: Any
    name: str
    original: Any = field(default=None, init=False)
    replaced: bool = field(default=False, init=False)

    def replace(self, value: Any) -> Any:
        """Put `value` in place; the original is returned (and kept, to restore it)."""
        if not self.replaced:
            self.original = getattr(self.owner, self.name)
            self.replaced = True
        setattr(self.owner, self.name, value)
        return self.original

    def restore(self) -> None:
        if self.replaced:
            setattr(self.owner, self.name, self.original)
            self.replaced = False


MODEL_RESOLVER = Seam(run_loop, "get_model")
FUNCTION_TOOL_INVOKER = Seam(tool_execution, "_invoke_function_tool_with_metadata")
FAILURE_FORMATTERS = (Seam(tool_module, FAILURE_FORMATTER), Seam(tool_execution, FAILURE_FORMATTER))
# The SDK's own runner, whichever instance holds the default slot (and the one runplane.install
# displaces): Agent.as_tool and agents.Runner both end up here.
RUNNER_METHODS = {name: Seam(AgentRunner, name) for name in ("run", "run_sync", "run_streamed")}


async def cleanup_on_run_end(model: Model, owner: object) -> None:
    """Forward the SDK's end-of-run hook to a wrapped model."""
    await model._cleanup_on_run_end(owner)


def request_id(response: Any) -> str | None:
    """The provider's request id the openai client keeps on a response, if any."""
    value = getattr(response, "_request_id", None)
    return value if isinstance(value, str) else None


def stream_error(result: RunResultStreaming) -> BaseException | None:
    """The error a consumer of `result`'s stream gets, or would get, read without consuming it.

    The SDK raises some errors only from `stream_events()`: past max_turns its run loop simply
    stops, and MaxTurnsExceeded is made when a consumer checks; a run no one reads failed all
    the same. Nothing here changes what a later consumer sees.
    """
    stored: BaseException | None = result._stored_exception
    if stored is not None:
        return stored
    error = result.run_loop_exception
    if error is not None:
        return error
    if (
        result.max_turns is not None
        and result.current_turn > result.max_turns
        and not result._max_turns_handled
    ):
        return MaxTurnsExceeded(f"Max turns ({result.max_turns}) exceeded")
    return None


def output_type_adapter(tool: Any) -> Any:
    """The adapter the SDK validates a typed function tool's output with (None: untyped)."""
    return tool._output_type_adapter


def requests_without_usage(response: Any) -> int:
    return _usage._requests_for_response_without_usage(response)


def mark_requests_without_usage(response: Any, requests: int) -> None:
    if requests > 0:
        object.__setattr__(response, _REQUEST_WITHOUT_USAGE, requests)


_FailureHandling: Any = tool_module._FailureHandlingFunctionToolInvoker
_PREPARE = "__agents_prepare_arguments__"  # how the SDK parses arguments for an approval


def raising_implementation(tool: FunctionTool) -> Callable[[Any, str], Awaitable[Any]]:
    """What `tool` runs, without the SDK's failure handling around it: it raises what the
    function raised (a worker reports that, and the run formats it as for a local tool)."""
    invoker = tool.on_invoke_tool
    if isinstance(invoker, _FailureHandling):
        impl: Callable[[Any, str], Awaitable[Any]] = invoker._invoke_tool_impl
        return impl
    return invoker


def failure_handled(
    tool: FunctionTool, impl: Callable[[Any, str], Awaitable[Any]]
) -> Callable[[Any, str], Awaitable[Any]]:
    """`impl` as a copy of `tool` invokes it: inside the SDK's failure handling when `tool` has
    it (the copy binds it to itself, and the tool's failure_error_function formats what `impl`
    raises), else bare, as `tool`'s own invoker is. Approvals parse arguments as `tool` does."""
    invoker = tool.on_invoke_tool
    if not isinstance(invoker, _FailureHandling):
        return impl
    prepare = getattr(invoker._invoke_tool_impl, _PREPARE, None)
    if prepare is not None:
        setattr(impl, _PREPARE, prepare)
    wrapped: Callable[[Any, str], Awaitable[Any]] = _FailureHandling(
        impl, invoker._on_handled_error
    )
    return wrapped


def decision_in(state: RunState[Any], item: Any) -> tuple[bool | None, str | None]:
    """What `state` says of waiting call `item` (a `ToolApprovalItem` of its interruptions):
    approved (True), rejected (False) or undecided (None), and a rejection's message. A nested
    `Agent.as_tool` run's call is decided in that run's own state, as `RunState.approve` put it."""
    nested = state._find_nested_approval_state(item)
    if nested is not None:
        state, item = nested
    context = state._context
    if context is None or not isinstance(item.call_id, str) or not item.tool_name:
        return None, None
    status = context.get_approval_status(item.tool_name, item.call_id, existing_pending=item)
    message = None
    if status is False:
        message = context.get_rejection_message(item.tool_name, item.call_id, existing_pending=item)
    return status, message
