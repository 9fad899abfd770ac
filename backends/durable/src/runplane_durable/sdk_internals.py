"""Every private SDK name the durable backend relies on, in one place.

The SDK is pinned (~=0.24.0). These are the seams where a run's non-deterministic steps pass
(model resolution, function-tool invocation), where a failing tool becomes an output (its failure
formatter), where a nested run is started (the SDK's own runner), and the helpers that keep a
streamed replay lossless, and the error a streamed run ended with even when no one read it.
An SDK upgrade that moves any of them fails the import here, loudly, and the parity and replay
tests say what changed.
"""

from __future__ import annotations

from typing import Any

from agents import RunResultStreaming
from agents import tool as tool_module
from agents import usage as _usage
from agents.exceptions import MaxTurnsExceeded
from agents.run import AgentRunner
from agents.run_internal import run_loop, tool_execution
from agents.tool import _FunctionToolInvocationResult as FunctionToolInvocationResult

__all__ = [
    "FAILURE_FORMATTER",
    "AgentRunner",
    "FunctionToolInvocationResult",
    "attach_normalized_usage",
    "output_type_adapter",
    "response_usage_to_usage",
    "run_loop",
    "stream_error",
    "tool_execution",
    "tool_module",
]

# Turns an exception raised by a function tool into the tool's output (its failure_error_function,
# by default "An error occurred while running the tool"). `agents.tool` calls it by this global
# name when a wrapped tool (function_tool, Agent.as_tool, MCP) fails; tool_execution imported it.
FAILURE_FORMATTER = "maybe_invoke_function_tool_failure_error_function"

response_usage_to_usage = _usage._response_usage_to_usage
attach_normalized_usage = _usage._attach_normalized_usage
_REQUEST_WITHOUT_USAGE = _usage._REQUEST_WITHOUT_USAGE_ATTR


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


for _name in ("get_model",):
    if not hasattr(run_loop, _name):  # pragma: no cover - only on an unsupported SDK
        raise ImportError(
            f"agents.run_internal.run_loop.{_name} is gone; pin openai-agents~=0.24.0"
        )
if not hasattr(tool_execution, "_invoke_function_tool_with_metadata"):  # pragma: no cover
    raise ImportError("agents.run_internal.tool_execution lost _invoke_function_tool_with_metadata")
for _module in (tool_module, tool_execution):
    if not hasattr(_module, FAILURE_FORMATTER):  # pragma: no cover
        raise ImportError(
            f"{_module.__name__}.{FAILURE_FORMATTER} is gone; pin openai-agents~=0.24.0"
        )
