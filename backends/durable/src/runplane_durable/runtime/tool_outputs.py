"""What a function tool's outcome becomes in the journal: its output, or the text the model saw.

The SDK's runner accepts any object a tool returns and shows the model `str()` of it (or its
JSON, for a tool with an output schema). The journal stores values that come back exactly; for
one that cannot, it stores what the SDK would show the model, byte for byte, so that a replay
hands the model the same text: the SDK's behaviour, durable. Only where the object itself
outlives the model's view (it may become the run's final output) is it refused, naming where in
it the part that cannot be stored is.
"""

from __future__ import annotations

import contextvars
from typing import Any

from agents.items import ItemHelpers
from agents.tool import FunctionTool
from agents.tool_context import ToolContext
from openai.types.responses import ResponseFunctionToolCall

from ..errors import JournalSerializationError
from ..events import Stringified, ToolError
from ..serde import dump_value, storable_text, type_name
from . import sdk_internals as sdk
from .remote_tools import RemoteToolError

__all__ = ["ERRORS", "MESSAGE_CHARS", "encode", "error_of"]

# The errors the SDK's failure formatter turned into a tool's output, for the tool call running
# in this context (a list the formatter appends to: the SDK may run it in a copied context).
ERRORS: contextvars.ContextVar[list[BaseException] | None] = contextvars.ContextVar(
    "runplane_durable_tool_errors", default=None
)
MESSAGE_CHARS = 4096


def error_of(errors: list[BaseException] | None) -> ToolError | None:
    """The exception a tool raised, as its event shows it (the model saw the SDK's text)."""
    if not errors:
        return None
    error = errors[-1]
    raised = error.raised_type if isinstance(error, RemoteToolError) else None
    shown = raised if raised is not None else type_name(type(error))  # a remote tool's own
    return ToolError(shown, storable_text(str(error))[:MESSAGE_CHARS])


def encode(
    tool: FunctionTool, context: ToolContext[Any], output: Any
) -> tuple[Any, Stringified | None] | None:
    """The journal's encoding of `output`, and, when it was stored as the text the model sees,
    what it was. None: the SDK itself refuses this output (it fails the run next), so there is
    nothing to journal."""
    what = f"tool {tool.name!r}"
    try:
        return dump_value(output, what=what), None
    except JournalSerializationError as exc:
        shown = _as_the_model_sees_it(tool, context, output)
        if shown is None:
            return None
        behaviour = _final_output_behaviour(tool, context, output, shown)
        if behaviour is not None:
            raise JournalSerializationError(
                f"{exc} It is not stored as the text the model sees, as other tools' outputs "
                f"are, because it may become the run's final output as it is (the agent's "
                f"tool_use_behavior is {behaviour}), and a replay must return what the live run "
                "did.",
                path=exc.path,
                leaf=exc.leaf,
            ) from None
        encoded = dump_value(shown, what=what)  # text, or the SDK's structured items (JSON)
        return encoded, Stringified(type_name(type(output)), f"{exc.path}: {exc.leaf}")


def _final_output_behaviour(
    tool: FunctionTool, context: ToolContext[Any], output: Any, shown: Any
) -> str | None:
    """How the tool's output may become the final output other than as `shown`, or None.

    The SDK makes a tool's output the final output when the agent stops at that tool; with no
    output type (or `str`) it is `str()` of the output, which the text shown to the model is
    too, so the replayed text gives the same final output. A function deciding it is given the
    object itself.
    """
    agent = context.agent
    behaviour = getattr(agent, "tool_use_behavior", "run_llm_again")
    if behaviour == "run_llm_again":
        return None
    if isinstance(behaviour, dict):
        if tool.name not in behaviour.get("stop_at_tool_names", []):
            return None
        described = f"StopAtTools({behaviour.get('stop_at_tool_names')!r})"
    elif behaviour == "stop_on_first_tool":
        described = "'stop_on_first_tool'"
    else:
        return "a function, which is given the tool's output itself"
    output_type = getattr(agent, "output_type", None)
    if output_type in (None, str) and shown == str(output):
        return None
    return f"{described} and its output_type is {output_type!r}"


def _as_the_model_sees_it(tool: FunctionTool, context: ToolContext[Any], output: Any) -> Any:
    """The output item's content the SDK builds from `output`, by the SDK's own function."""
    call = context.tool_call
    if call is None:
        call = ResponseFunctionToolCall(
            type="function_call",
            call_id=context.tool_call_id,
            name=tool.name,
            arguments=context.tool_arguments,
        )
    try:
        item = ItemHelpers.tool_call_output_item(
            call,
            output,
            output_json_schema=tool.output_json_schema,
            output_type_adapter=sdk.output_type_adapter(tool),
        )
    except Exception:
        return None
    return item["output"]
