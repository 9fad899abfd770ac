"""The two seams where a run meets the outside world, journaled.

`install()` wraps the SDK's model resolution (so every model path is covered: `agent.model`
instances and names, `run_config.model`, `run_config.model_provider`, handoff targets) and its
function-tool invocation. Both wrappers do nothing unless the current task runs a durable run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import pydantic
from agents import Agent, RunConfig
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.model_settings import ModelSettings
from agents.models.interface import Model, ModelTracing
from agents.tool import FunctionTool, Tool
from agents.tool_context import ToolContext
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam

from . import sdk_internals as sdk
from .active import ACTIVE, REQUESTED_RUN_ID, ActiveRun
from .records import JournalRecord, NewEvent, UsageDelta
from .serde import (
    dump_model_response,
    dump_stream_events,
    dump_value,
    fingerprint,
    load_model_response,
    load_stream_events,
    load_value,
)

__all__ = ["JournalingModel", "install"]

# The tail of the input that goes into a request's fingerprint. Earlier items were produced by
# earlier (already checked) steps; hashing only the tail keeps per-step cost flat as runs grow.
FINGERPRINT_TAIL = 4
_USAGE = pydantic.TypeAdapter(Usage)


def _usage_delta(usage: Usage) -> UsageDelta:
    return UsageDelta(
        model_calls=1,
        requests=usage.requests,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def _usage_json(usage: Usage) -> dict[str, int]:
    return {
        "requests": usage.requests,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


class JournalingModel(Model):
    """Wraps the model a run resolved: recorded responses on replay, journaled ones live."""

    def __init__(self, inner: Model, active: ActiveRun, agent_name: str) -> None:
        self.inner = inner
        self.active = active
        self.agent_name = agent_name

    def __getattr__(self, name: str) -> Any:  # model-specific extras stay reachable
        return getattr(self.inner, name)

    async def close(self) -> None:
        await self.inner.close()

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.inner._cleanup_on_run_end(owner)

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)

    def _request(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        previous_response_id: str | None,
        conversation_id: str | None,
    ) -> tuple[str, str]:
        tail: Any = input if isinstance(input, str) else input[-FINGERPRINT_TAIL:]
        request = {
            "agent": self.agent_name,
            "instructions": system_instructions,
            "input_len": 1 if isinstance(input, str) else len(input),
            "input_tail": tail,
            "tools": [t.name for t in tools],
            "output": output_schema.name() if output_schema is not None else None,
            "handoffs": [h.tool_name for h in handoffs],
            "previous_response_id": previous_response_id,
            "conversation_id": conversation_id,
        }
        describe = f"agent {self.agent_name!r} with {request['input_len']} input item(s)"
        return fingerprint(request), describe

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        await self.active.session()
        fp, describe = self._request(
            system_instructions,
            input,
            tools,
            output_schema,
            handoffs,
            previous_response_id,
            conversation_id,
        )
        entry = self.active.recorded_model(fp, describe)
        if entry is not None:
            self.active.model_ordinal += 1
            return load_model_response(entry.payload["response"])
        response = await self.inner.get_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        )
        await self._record(fp, describe, response, None, handoffs)
        return response

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        await self.active.session()
        fp, describe = self._request(
            system_instructions,
            input,
            tools,
            output_schema,
            handoffs,
            previous_response_id,
            conversation_id,
        )
        entry = self.active.recorded_model(fp, describe)
        if entry is not None:
            self.active.model_ordinal += 1
            for event in _replay_stream(entry):
                yield event
            return
        events: list[TResponseStreamEvent] = []
        # aclosing: when the SDK closes this stream (a terminal failure), the model's own stream
        # is closed here, in the run's task, not later by the garbage collector.
        async with contextlib.aclosing(
            cast(
                AsyncGenerator[TResponseStreamEvent, None],
                self.inner.stream_response(
                    system_instructions,
                    input,
                    model_settings,
                    tools,
                    output_schema,
                    handoffs,
                    tracing,
                    previous_response_id=previous_response_id,
                    conversation_id=conversation_id,
                    prompt=prompt,
                ),
            )
        ) as stream:
            async for event in stream:
                events.append(event)
                yield event
        # The SDK has consumed the terminal event but runs no tool until this generator ends,
        # so the step is committed before anything acts on it.
        response = _response_from_stream(events)
        if response is not None:
            await self._record(fp, describe, response, events, handoffs)

    async def _record(
        self,
        fp: str,
        describe: str,
        response: ModelResponse,
        stream: list[TResponseStreamEvent] | None,
        handoffs: list[Handoff],
    ) -> None:
        session = await self.active.session()
        ordinal = self.active.model_ordinal
        dumped = dump_model_response(response)
        handoff_names = {h.tool_name: h.agent_name for h in handoffs}
        calls = [
            {"type": "handoff", "to": handoff_names[item.name], "call_id": item.call_id}
            if item.name in handoff_names
            else {
                "type": "tool",
                "name": item.name,
                "arguments": item.arguments,
                "call_id": item.call_id,
            }
            for item in response.output
            if isinstance(item, ResponseFunctionToolCall)
        ]
        payload: dict[str, Any] = {"response": dumped, "describe": describe}
        if stream is not None:
            payload["stream"] = dump_stream_events(stream)
            payload["usage"] = _usage_snapshot(response.usage)
        await session.append(
            journal=("model", str(ordinal), fp, payload),
            events=[
                NewEvent(
                    "model_call",
                    {
                        "ordinal": ordinal,
                        "agent": self.agent_name,
                        "usage": _usage_json(response.usage),
                        "output": dumped["output"],
                        "calls": calls,
                        "streamed": stream is not None,
                    },
                )
            ],
            usage=_usage_delta(response.usage),
        )
        self.active.model_ordinal += 1


def _usage_snapshot(usage: Usage) -> Any:
    return _USAGE.dump_python(usage, mode="json")


def _response_from_stream(events: list[TResponseStreamEvent]) -> ModelResponse | None:
    """The ModelResponse the SDK builds from a stream (its terminal event), for the journal."""
    done_items = [e.item for e in events if isinstance(e, ResponseOutputItemDoneEvent)]
    for event in reversed(events):
        if isinstance(event, ResponseCompletedEvent):
            terminal = event.response
            usage = (
                sdk.response_usage_to_usage(terminal.usage)
                if terminal.usage
                else Usage(requests=sdk.requests_without_usage(terminal))
            )
            return ModelResponse(
                output=list(terminal.output or done_items),
                usage=usage,
                response_id=terminal.id,
                request_id=getattr(terminal, "_request_id", None),
            )
    return None  # the SDK raises its own error for a stream without a terminal event


def _replay_stream(entry: JournalRecord) -> list[TResponseStreamEvent]:
    payload = entry.payload
    if "stream" not in payload:
        return [_synthesized_completion(load_model_response(payload["response"]))]
    events = load_stream_events(payload["stream"])
    usage = pydantic_usage(payload["usage"])
    for event in events:
        if isinstance(event, ResponseCompletedEvent):
            if event.response.usage is not None:
                sdk.attach_normalized_usage(event.response.usage, usage)
            else:
                sdk.mark_requests_without_usage(event.response, usage.requests)
    return events


def pydantic_usage(data: Any) -> Usage:
    return _USAGE.validate_python(data)


def _synthesized_completion(response: ModelResponse) -> TResponseStreamEvent:
    """A terminal stream event for a step that was journaled by a non-streamed call."""
    completed = Response(
        id=response.response_id or "runplane-replay",
        created_at=0,
        model="runplane-replay",
        object="response",
        output=list(response.output),
        tool_choice="auto",
        tools=[],
        top_p=None,
        parallel_tool_calls=True,
        status="completed",
        usage=ResponseUsage(
            input_tokens=response.usage.input_tokens,
            input_tokens_details=response.usage.input_tokens_details,
            output_tokens=response.usage.output_tokens,
            output_tokens_details=response.usage.output_tokens_details,
            total_tokens=response.usage.total_tokens,
        ),
    )
    assert completed.usage is not None
    sdk.attach_normalized_usage(completed.usage, response.usage)
    event = ResponseCompletedEvent(type="response.completed", response=completed, sequence_number=0)
    return event


_original_get_model: Any = None
_original_invoke: Any = None
_install_lock = threading.Lock()


def _get_model(agent: Agent[Any], run_config: RunConfig) -> Model:
    model: Model = _original_get_model(agent, run_config)
    active = ACTIVE.get()
    if active is None or isinstance(model, JournalingModel):
        return model
    return JournalingModel(model, active, agent.name)


async def _invoke_function_tool(
    *, function_tool: FunctionTool, context: ToolContext[Any], arguments: str
) -> Any:
    active = ACTIVE.get()
    if active is None:
        return await _original_invoke(
            function_tool=function_tool, context=context, arguments=arguments
        )
    session = await active.session()
    key = f"{active.model_ordinal}:{context.tool_call_id}"
    entry = active.recorded_tool(key)
    if entry is not None:
        return sdk.FunctionToolInvocationResult(
            load_value(entry.payload["output"]), is_sdk_generated_error=entry.payload["sdk_error"]
        )
    # A run started by the tool (Agent.as_tool) is its own run, not steps of this one; under
    # runplane.install("durable") it gets an id derived from this call, so it resumes too.
    active_token = ACTIVE.set(None)
    id_token = REQUESTED_RUN_ID.set(f"{session.record.id}/{key}")
    started = time.monotonic()
    try:
        result = await _original_invoke(
            function_tool=function_tool, context=context, arguments=arguments
        )
    finally:
        ACTIVE.reset(active_token)
        REQUESTED_RUN_ID.reset(id_token)
    output = dump_value(result.output, what=f"tool {function_tool.name!r}")
    payload = {
        "name": function_tool.name,
        "call_id": context.tool_call_id,
        "arguments": arguments,
        "output": output,
        "sdk_error": result.is_sdk_generated_error,
    }
    # Not waited for if it has to queue (PostgreSQL, a busy SQLite file): every later step (the
    # next model response, the run's outcome) commits after it, so nothing that used this output
    # is durable before it is. A crash before it commits re-runs the tool, as one during it would.
    await session.append(
        wait=False,
        journal=("tool", key, None, payload),
        events=[
            NewEvent(
                "tool_call",
                {**payload, "key": key, "seconds": round(time.monotonic() - started, 6)},
            )
        ],
        usage=UsageDelta(tool_calls=1),
    )
    active.remember_tool(JournalRecord(0, "tool", key, None, payload))
    return result


def install() -> None:
    """Wrap the SDK's two seams once per process (idempotent, thread-safe)."""
    global _original_get_model, _original_invoke
    with _install_lock:
        if _original_get_model is not None:
            return
        _original_get_model = sdk.run_loop.get_model
        _original_invoke = sdk.tool_execution._invoke_function_tool_with_metadata  # type: ignore[attr-defined]
        sdk.run_loop.get_model = _get_model
        sdk.tool_execution._invoke_function_tool_with_metadata = _invoke_function_tool  # type: ignore[attr-defined]
