"""The seams where a run meets the outside world, journaled.

`install()` wraps the SDK's model resolution (so every model path is covered: `agent.model`
instances and names, `run_config.model`, `run_config.model_provider`, handoff targets), its
function-tool invocation and its session reads and writes (`session_steps.py`); each does
nothing unless the current task runs a durable run. It also keeps the journal's own errors
from becoming a tool's output, and sends a run the SDK starts inside a durable run's tool
(`Agent.as_tool`) to that run's backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import pydantic
import pydantic_core
from agents import Agent, RunConfig
from agents.agent_output import AgentOutputSchema, AgentOutputSchemaBase
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

from runplane import RunnerBackend

from .. import codec
from ..errors import DurableError
from ..events import (
    HandoffRequested,
    ModelCalled,
    TokenUsage,
    ToolCalled,
    ToolRequest,
)
from ..names import tool_key
from ..records import JournalEntry, NewEvent, UsageDelta
from ..serde import (
    dump_json,
    dump_model_response,
    dump_stream_events,
    fingerprint,
    load_model_response,
    load_stream_events,
    load_value,
)
from . import sdk_internals as sdk
from . import session_steps, tool_outputs, tool_usage
from .active import (
    ACTIVE,
    PARTS,
    REQUESTED_RUN_ID,
    TOOL_CALL_KEY,
    TOOL_OF,
    ActiveRun,
    ModelRequest,
)
from .approvals import STOPPED_NESTED
from .identity import nested_run_id

__all__ = ["INLINE_CHARS", "JournalingModel", "install", "installed", "tool_digest", "uninstall"]

log = logging.getLogger("runplane_durable")

# The tail of the input that goes into a request's fingerprint. Earlier items were produced by
# earlier (already checked) steps; hashing only the tail keeps per-step cost flat as runs grow.
FINGERPRINT_TAIL = 4
# A step's event holds a value (tool output, arguments, model output) up to this many characters;
# a larger one is stored only in the journal, and the event keeps a preview of it.
INLINE_CHARS = 4096
PREVIEW_CHARS = 500
_USAGE = pydantic.TypeAdapter(Usage)
_DIGEST_CHARS = 16
# Model settings that change how a request travels, not what the model is asked.
_TRANSPORT_SETTINGS = frozenset({"retry", "timeout", "extra_headers"})


def _usage_delta(usage: Usage) -> UsageDelta:
    return UsageDelta(
        model_calls=1,
        requests=usage.requests,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def _token_usage(usage: Usage) -> TokenUsage:
    return TokenUsage(
        requests=usage.requests,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


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

    async def _cleanup_on_run_end(self, owner: object) -> None:  # the SDK's hook, forwarded
        await sdk.cleanup_on_run_end(self.inner, owner)

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)

    def _request(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelRequest:
        """Everything that changes what the model is asked, digested part by part.

        Per step this costs the instructions, the input's tail, the settings and the handoffs;
        a tool's digest is computed once per tool object.
        """
        input_len = 1 if isinstance(input, str) else len(input)
        tail: Any = input if isinstance(input, str) else input[-FINGERPRINT_TAIL:]
        digests = [tool_digest(t) for t in tools]
        parts = {
            "agent": _text_digest(self.agent_name),
            "instructions": _text_digest(system_instructions),
            "input": _digest({"len": input_len, "tail": tail}),
            "tools": _text_digest(",".join(digests)),
            "output": _output_digest(output_schema),
            "handoffs": _digest([_handoff_view(h) for h in handoffs]),
            "settings": _settings_digest(model_settings),
            "prompt": _digest(prompt),
            "conversation": (
                _digest([previous_response_id, conversation_id])
                if previous_response_id is not None or conversation_id is not None
                else "-"
            ),
        }
        combined = "|".join(f"{name}={parts[name]}" for name in PARTS)

        def legacy() -> str:
            return fingerprint(
                {
                    "agent": self.agent_name,
                    "instructions": system_instructions,
                    "input_len": input_len,
                    "input_tail": tail,
                    "tools": [t.name for t in tools],
                    "output": output_schema.name() if output_schema is not None else None,
                    "handoffs": [h.tool_name for h in handoffs],
                    "previous_response_id": previous_response_id,
                    "conversation_id": conversation_id,
                }
            )

        return ModelRequest(
            fingerprint=hashlib.sha256(combined.encode()).hexdigest()[:32],
            parts=parts,
            tools={
                getattr(t, "name", type(t).__name__): d for t, d in zip(tools, digests, strict=True)
            },
            describe=f"agent {self.agent_name!r} with {input_len} input item(s)",
            legacy=legacy,
        )

    async def _replayed(self, request: ModelRequest) -> JournalEntry | None:
        """The journal entry that answers `request` in a replay (the run then moves past it);
        None for a live call, once the lease is checked: a holder that lost the run calls out
        no more."""
        session = await self.active.session()
        entry = self.active.recorded_model(request)
        if entry is not None:
            self.active.model_ordinal += 1
        else:
            if self.active.stopper is not None:  # a turn boundary: a pending cancel stops here
                self.active.stopper.before_model_call(session.cancel_requested)
            await session.check_lease()
        return entry

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
        request = self._request(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            previous_response_id,
            conversation_id,
            prompt,
        )
        entry = await self._replayed(request)
        if entry is not None:
            replayed = load_model_response(entry.payload["response"])
            tool_usage.count(replayed.usage)
            return replayed
        started = time.monotonic()
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
        await self._record(request, response, None, handoffs, time.monotonic() - started)
        tool_usage.count(response.usage)
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
        request = self._request(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            previous_response_id,
            conversation_id,
            prompt,
        )
        entry = await self._replayed(request)
        if entry is not None:
            tool_usage.count(_recorded_usage(entry.payload))
            for event in _replay_stream(entry):
                yield event
            return
        events: list[TResponseStreamEvent] = []
        started = time.monotonic()
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
            await self._record(request, response, events, handoffs, time.monotonic() - started)
            tool_usage.count(response.usage)

    async def _record(
        self,
        request: ModelRequest,
        response: ModelResponse,
        stream: list[TResponseStreamEvent] | None,
        handoffs: list[Handoff],
        seconds: float,
    ) -> None:
        """Journal one live model call; its event also says how long the call took (a streamed
        one: until its last event)."""
        session = await self.active.session()
        ordinal = self.active.model_ordinal
        dumped = dump_model_response(response)
        handoff_names = {h.tool_name: h.agent_name for h in handoffs}
        calls = tuple(
            HandoffRequested(handoff_names[item.name], item.call_id)
            if item.name in handoff_names
            else ToolRequest(item.name, item.call_id, *_bounded(item.arguments))
            for item in response.output
            if isinstance(item, ResponseFunctionToolCall)
        )
        payload: dict[str, Any] = {
            "response": dumped,
            "describe": request.describe,
            "parts": request.parts,
            "tool_digests": request.tools,
        }
        if stream is not None:
            payload["stream"] = dump_stream_events(stream)
            payload["usage"] = _usage_snapshot(response.usage)
        output_text = dump_json(dumped["output"])
        # Over INLINE_CHARS, in the journal only: `runplane runs show` reads it from there.
        output, output_preview = (
            (dumped["output"], None)
            if len(output_text) <= INLINE_CHARS
            else (None, output_text[:PREVIEW_CHARS])
        )
        event = ModelCalled(
            ordinal=ordinal,
            agent=self.agent_name,
            usage=_token_usage(response.usage),
            seconds=round(seconds, 6),
            output=output,
            output_preview=output_preview,
            calls=calls,
            streamed=stream is not None,
        )
        await session.append(
            journal=JournalEntry("model", str(ordinal), request.fingerprint, payload),
            events=[NewEvent(event.TYPE, event.to_payload())],
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
                request_id=sdk.request_id(terminal),
            )
    return None  # the SDK raises its own error for a stream without a terminal event


def _replay_stream(entry: JournalEntry) -> list[TResponseStreamEvent]:
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


def _recorded_usage(payload: dict[str, Any]) -> Usage:
    """A journaled model call's usage, whether it was recorded streamed or not."""
    if "usage" in payload:
        return pydantic_usage(payload["usage"])
    return load_model_response(payload["response"]).usage


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


# -- request digests ------------------------------------------------------------------------------


def _text_digest(text: str | None) -> str:
    if text is None:
        return "-"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_CHARS]


def _digest(value: Any) -> str:
    if value is None:
        return "-"
    try:
        return fingerprint(value)[:_DIGEST_CHARS]
    except ValueError:  # a circular structure: its shape is all that can be compared
        return _text_digest(type(value).__qualname__)


def _handoff_view(handoff: Handoff) -> dict[str, Any]:
    """What the model is told about a handoff (it sees one as a tool)."""
    return {
        "name": handoff.tool_name,
        "description": handoff.tool_description,
        "parameters": handoff.input_json_schema,
        "strict": handoff.strict_json_schema,
    }


# (output type, strict) -> digest: the SDK builds a new AgentOutputSchema for every turn.
_output_digests: dict[tuple[Any, bool], str] = {}


def _output_digest(schema: AgentOutputSchemaBase | None) -> str:
    if schema is None:
        return "-"
    key: tuple[Any, bool] | None = None
    if type(schema) is AgentOutputSchema:
        key = (schema.output_type, schema.is_strict_json_schema())
        try:
            cached = _output_digests.get(key)
        except TypeError:  # an unhashable output type: digested at every step
            key, cached = None, None
        if cached is not None:
            return cached
    view: dict[str, Any] = {"name": schema.name(), "plain": schema.is_plain_text()}
    if not view["plain"]:
        view["strict"] = schema.is_strict_json_schema()
        view["schema"] = schema.json_schema()
    digest = _digest(view)
    if key is not None:
        if len(_output_digests) >= 256:  # output types made at run time: bounded, not leaked
            _output_digests.clear()
        _output_digests[key] = digest
    return digest


_settings_adapters: dict[type, pydantic.TypeAdapter[Any]] = {}


def _settings_digest(settings: ModelSettings) -> str:
    """The settings that reach the request; unset ones are left out, so that a newer SDK adding
    a field does not make every journal diverge."""
    cls = type(settings)
    adapter = _settings_adapters.get(cls)
    if adapter is None:
        adapter = _settings_adapters[cls] = pydantic.TypeAdapter(cls)
    try:
        data = adapter.dump_python(
            settings, mode="json", exclude=set(_TRANSPORT_SETTINGS), exclude_none=True
        )
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
        data = {  # extra_args holding objects pydantic cannot dump: their type names count
            f.name: value
            for f in dataclasses.fields(settings)
            if f.name not in _TRANSPORT_SETTINGS
            and (value := getattr(settings, f.name)) is not None
        }
    return _digest(data)


# id(tool) -> (weak reference to it, what its digest was computed from, the digest)
_tool_digests: dict[int, tuple[weakref.ref[Any], Any, Any, Any, Any, str]] = {}


def _tool_view(tool: Tool) -> Any:
    """What the model is told about a tool."""
    if isinstance(tool, FunctionTool):
        return {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.params_json_schema,
            "strict": tool.strict_json_schema,
            "defer_loading": getattr(tool, "defer_loading", False),
        }
    # Hosted tools (web search, file search, MCP, ...): their configuration is what is sent.
    return {"type": type(tool).__qualname__, "config": tool}


def tool_digest(tool: Tool) -> str:
    """The digest of what the model is told about `tool`, computed once per tool object.

    Recomputed when a function tool's name, description, parameter schema or strictness is
    replaced (an identity check, so this costs nothing per step); a schema edited in place is
    not seen, nor is a hosted tool's configuration changed after its first use.
    """
    basis: tuple[Any, Any, Any, Any] = (
        (tool.name, tool.description, tool.params_json_schema, tool.strict_json_schema)
        if isinstance(tool, FunctionTool)
        else (None, None, None, None)
    )
    key = id(tool)
    cached = _tool_digests.get(key)
    if (
        cached is not None
        and cached[0]() is tool
        and cached[1] is basis[0]
        and cached[2] is basis[1]
        and cached[3] is basis[2]
        and cached[4] == basis[3]
    ):
        return cached[5]
    digest = _digest(_tool_view(tool))
    try:
        ref: weakref.ref[Any] = weakref.ref(tool, functools.partial(_forget_tool, key))
    except TypeError:  # not weakly referenceable: digested at every step
        return digest
    _tool_digests[key] = (ref, *basis, digest)
    return digest


def _forget_tool(key: int, gone: weakref.ref[Any]) -> None:
    cached = _tool_digests.get(key)
    if cached is not None and cached[0] is gone:
        del _tool_digests[key]


def _bounded(text: str) -> tuple[str | None, str | None]:
    """(`text`, None), or, when it is large, (None, a preview): the value is then in the
    journal only."""
    if len(text) <= INLINE_CHARS:
        return text, None
    return None, text[:PREVIEW_CHARS]


def _bounded_output(output: Any) -> tuple[Any, str | None]:
    """(a tool's encoded output, None), or, when it is large, (None, a preview of it)."""
    inner = output.get(codec.JSON) if isinstance(output, dict) and len(output) == 1 else None
    text = inner if isinstance(inner, str) else None
    if text is None or len(text) > INLINE_CHARS:
        text = text if text is not None else dump_json(output)
        if len(text) > INLINE_CHARS:
            return None, text[:PREVIEW_CHARS]
    return output, None


# -- the seams ------------------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed = False
_warned_unrouted = False


def _get_model(agent: Agent[Any], run_config: RunConfig) -> Model:
    model: Model = sdk.MODEL_RESOLVER.original(agent, run_config)
    active = ACTIVE.get()
    if active is None or isinstance(model, JournalingModel):
        return model
    return JournalingModel(model, active, agent.name)


async def _invoke_function_tool(
    *, function_tool: FunctionTool, context: ToolContext[Any], arguments: str
) -> Any:
    active = ACTIVE.get()
    if active is None:
        return await sdk.FUNCTION_TOOL_INVOKER.original(
            function_tool=function_tool, context=context, arguments=arguments
        )
    session = await active.session()
    key = tool_key(active.model_ordinal, context.tool_call_id)
    entry = active.recorded_tool(key)
    if entry is not None:
        tool_usage.add_recorded(context.usage, entry.payload.get("usage"))
        return sdk.FunctionToolInvocationResult(
            load_value(entry.payload["output"]), is_sdk_generated_error=entry.payload["sdk_error"]
        )
    await session.check_lease()  # a holder that lost the run runs no tool
    # A run started by the tool (Agent.as_tool) is its own run, not steps of this one: it goes to
    # this run's backend (see _route) under an id derived from this call, so it resumes too.
    active_token = ACTIVE.set(None)
    tool_of_token = TOOL_OF.set(active)
    key_token = TOOL_CALL_KEY.set(key)
    id_token = REQUESTED_RUN_ID.set(nested_run_id(session.record.id, key))
    errors: list[BaseException] = []
    errors_token = tool_outputs.ERRORS.set(errors)
    stopped: list[str] = []  # a run this tool started that stopped for approval (approvals.py)
    stopped_token = STOPPED_NESTED.set(stopped)
    started = time.monotonic()
    try:
        with tool_usage.counting() as used:
            result = await sdk.FUNCTION_TOOL_INVOKER.original(
                function_tool=function_tool, context=context, arguments=arguments
            )
    finally:
        ACTIVE.reset(active_token)
        TOOL_OF.reset(tool_of_token)
        TOOL_CALL_KEY.reset(key_token)
        REQUESTED_RUN_ID.reset(id_token)
        tool_outputs.ERRORS.reset(errors_token)
        STOPPED_NESTED.reset(stopped_token)
    if stopped:  # no output yet: the call runs again when the run resumes, and its run resumes
        return result
    seconds = round(time.monotonic() - started, 6)
    encoded = tool_outputs.encode(function_tool, context, result.output)
    if encoded is None:  # the SDK refuses this output itself, and fails the run next
        return result
    output, stringified = encoded
    payload = {
        "name": function_tool.name,
        "call_id": context.tool_call_id,
        "arguments": arguments,
        "output": output,
        "sdk_error": result.is_sdk_generated_error,
    }
    if stringified is not None:  # stored as the text the model was shown
        payload["stringified"] = stringified.to_payload()
    added = tool_usage.recorded(used)
    if added is not None:  # the runs this tool started: a replay adds their usage again
        payload["usage"] = added
    # The output is journaled once; the event log holds it only when small.
    shown, shown_preview = _bounded_output(output)
    given, given_preview = _bounded(arguments)
    event = ToolCalled(
        name=function_tool.name,
        call_id=context.tool_call_id,
        key=key,
        sdk_error=result.is_sdk_generated_error,
        seconds=seconds,
        stringified=stringified,
        # the model was shown the SDK's failure text ("output")
        error=tool_outputs.error_of(errors),
        arguments=given,
        arguments_preview=given_preview,
        output=shown,
        output_preview=shown_preview,
    )
    # Not waited for if it has to queue (PostgreSQL, a busy SQLite file): every later step (the
    # next model response, the run's outcome) commits after it, so nothing that used this output
    # is durable before it is. A crash before it commits re-runs the tool, as one during it would.
    entry = JournalEntry("tool", key, None, payload)
    await session.append(
        wait=False,
        journal=entry,
        events=[NewEvent(event.TYPE, event.to_payload())],
        usage=UsageDelta(tool_calls=1),
    )
    active.remember_tool(entry)
    return result


def _failure_formatter(original: Any) -> Any:
    async def format_failure(
        *, function_tool: FunctionTool, context: Any, error: BaseException
    ) -> str | None:
        """The SDK's formatter, except for runplane's own errors, which the tool then re-raises:
        a failed write, a lost lease or a refused replay is never a tool's output."""
        if isinstance(error, DurableError):
            return None
        errors = tool_outputs.ERRORS.get()
        if errors is not None:  # a durable run's tool: its event keeps what was raised
            errors.append(error)
        result: str | None = await original(
            function_tool=function_tool, context=context, error=error
        )
        return result

    return format_failure


def _nested_backend() -> RunnerBackend | None:
    """The backend for a run the SDK's own runner is starting here, if it is one a durable run's
    tool started; None to let the SDK run it (everywhere else, and inside a backend's own run,
    which sets ACTIVE before it calls the SDK's runner)."""
    global _warned_unrouted
    if ACTIVE.get() is not None:
        return None
    parent = TOOL_OF.get()
    if parent is None:
        return None
    if parent.backend is None and not _warned_unrouted:
        _warned_unrouted = True
        log.warning(
            "a run started inside a durable run's tool is not durable: the durable run did not "
            "say which backend runs it"
        )
    return parent.backend


async def _routed_run(self: Any, starting_agent: Any, input: Any, **kwargs: Any) -> Any:
    backend = _nested_backend()
    if backend is None:
        return await sdk.RUNNER_METHODS["run"].original(self, starting_agent, input, **kwargs)
    token = TOOL_OF.set(None)
    try:
        return await backend.run(starting_agent, input, **kwargs)
    finally:
        TOOL_OF.reset(token)


def _routed_run_sync(self: Any, starting_agent: Any, input: Any, **kwargs: Any) -> Any:
    backend = _nested_backend()
    if backend is None:
        return sdk.RUNNER_METHODS["run_sync"].original(self, starting_agent, input, **kwargs)
    token = TOOL_OF.set(None)
    try:
        return backend.run_sync(starting_agent, input, **kwargs)
    finally:
        TOOL_OF.reset(token)


def _routed_run_streamed(self: Any, starting_agent: Any, input: Any, **kwargs: Any) -> Any:
    backend = _nested_backend()
    if backend is None:
        return sdk.RUNNER_METHODS["run_streamed"].original(self, starting_agent, input, **kwargs)
    token = TOOL_OF.set(None)
    try:
        return backend.run_streamed(starting_agent, input, **kwargs)
    finally:
        TOOL_OF.reset(token)


_ROUTED = {"run": _routed_run, "run_sync": _routed_run_sync, "run_streamed": _routed_run_streamed}


def install() -> None:
    """Wrap the SDK's seams once per process (idempotent, thread-safe): the first durable run
    does it, not importing or constructing anything.

    Each wrapper acts only inside a durable run (or, for the runner and the failure formatter,
    a durable run's tool, or one of runplane's own errors); everything else passes through.
    """
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        sdk.MODEL_RESOLVER.replace(_get_model)
        sdk.FUNCTION_TOOL_INVOKER.replace(_invoke_function_tool)
        for seam in sdk.FAILURE_FORMATTERS:
            seam.replace(_failure_formatter(getattr(seam.owner, seam.name)))
        for name, routed in _ROUTED.items():
            sdk.RUNNER_METHODS[name].replace(routed)
        session_steps.install()
        _installed = True


def uninstall() -> None:
    """Put every SDK seam back as it was (for tests and programs that want the SDK untouched;
    the next durable run installs them again). Not while a durable run is going on."""
    global _installed
    with _install_lock:
        for seam in (
            sdk.MODEL_RESOLVER,
            sdk.FUNCTION_TOOL_INVOKER,
            *sdk.FAILURE_FORMATTERS,
            *sdk.RUNNER_METHODS.values(),
        ):
            seam.restore()
        session_steps.restore()
        _installed = False


def installed() -> bool:
    return _installed
