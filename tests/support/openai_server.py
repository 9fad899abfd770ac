"""A real OpenAI-compatible HTTP server on 127.0.0.1 that answers scripted replies.

Backends are proven end to end only if the bytes go over a socket: the openai client's SSE parsing,
retries, headers and the SDK's model adapters all run exactly as they would against a real endpoint.
A test enqueues replies (text, tool calls, errors); each model call pops the next one and renders it
in the format of the API that was called, so one script works for Chat Completions and Responses.
Every payload is validated against the installed `openai` types before it is sent, so a drift in
those types fails here, loudly, rather than as a confusing parse error in the client.

    with ScriptedOpenAIServer(api_key="sk-test") as server:
        server.enqueue(Reply.tool("add", {"a": 1, "b": 2}), Reply.message("3"))
        ...  # point a client at server.base_url
        assert server.model_requests()[1].body["messages"][-1]["role"] == "tool"
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import uvicorn
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "CHAT_COMPLETIONS_PATH",
    "RESPONSES_PATH",
    "ErrorReply",
    "RecordedRequest",
    "Reply",
    "Scripted",
    "ScriptedOpenAIServer",
    "ToolCall",
    "Usage",
]

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"

Json = dict[str, Any]
Api = Literal["chat_completions", "responses"]

_RESPONSE_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


@dataclass(frozen=True)
class Usage:
    """Token counts a reply reports (sent only when a reply carries them)."""

    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asks for; `call_id=None` gets a fresh `call_<n>` id."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None

    @property
    def arguments_json(self) -> str:
        """Arguments as the wire carries them: a JSON string (a str is sent verbatim)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class Reply:
    """One scripted model turn: text, tool calls, or both (as Chat Completions allows)."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None

    def __post_init__(self) -> None:
        if self.text is None and not self.tool_calls:
            raise ValueError("a Reply needs text, tool calls, or both")

    @classmethod
    def message(cls, text: str, *, usage: Usage | None = None) -> Reply:
        """The model answers with `text`."""
        return cls(text=text, usage=usage)

    @classmethod
    def tool(
        cls,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        call_id: str | None = None,
        usage: Usage | None = None,
    ) -> Reply:
        """The model asks for one tool call."""
        return cls(tool_calls=(ToolCall(name, arguments or {}, call_id),), usage=usage)

    @classmethod
    def tools(cls, *calls: ToolCall, usage: Usage | None = None) -> Reply:
        """The model asks for several tool calls at once (parallel tool calling)."""
        return cls(tool_calls=tuple(calls), usage=usage)


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error instead of a model turn; `retry` sets `x-should-retry` for the client."""

    status: int
    message: str = "scripted error"
    code: str | None = None
    retry: bool = False


Scripted = Reply | ErrorReply


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any

    @property
    def api(self) -> Api | None:
        """Which model API the request called, None for anything else."""
        if self.path == CHAT_COMPLETIONS_PATH:
            return "chat_completions"
        if self.path == RESPONSES_PATH:
            return "responses"
        return None

    @property
    def streamed(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def bearer(self) -> str | None:
        """The API key from `Authorization: Bearer ...`, if any."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    def tool_names(self) -> list[str]:
        """Names of the function tools the client offered, in either API's format."""
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        names: list[str] = []
        for tool in tools or []:
            # Chat Completions nests the function ({"function": {"name": ...}}), Responses not.
            function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
            if isinstance(function.get("name"), str):
                names.append(function["name"])
        return names


class ScriptedOpenAIServer:
    """OpenAI-compatible endpoints served by uvicorn in a background thread.

    `api_key=None` accepts any (or no) key; otherwise /v1/* answers 401 to any other key.
    `chunk_size` is how many characters of text or tool arguments each streamed delta carries,
    so that every streamed reply arrives in several pieces.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("gpt-test",),
        chunk_size: int = 4,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.api_key = api_key
        self.models = tuple(models)
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._replies: deque[Scripted] = deque()
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.app = Starlette(
            routes=[
                Route(CHAT_COMPLETIONS_PATH, self._chat_completions, methods=["POST"]),
                Route(RESPONSES_PATH, self._responses, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
                Route("/health", self._health, methods=["GET"]),
            ]
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> ScriptedOpenAIServer:
        """Bind an ephemeral port on 127.0.0.1 and serve until `stop()`."""
        if self._server is not None:
            raise RuntimeError("server already started")
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="scripted-openai-server", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the scripted OpenAI server did not start")
            time.sleep(0.005)
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down and join the server thread (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._port = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError("the scripted OpenAI server did not stop")

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def url(self) -> str:
        """Root URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url`: the root plus /v1."""
        return f"{self.url}/v1"

    @property
    def open_connections(self) -> int:
        """Client connections the server holds open now (a client's pooled keep-alive ones)."""
        return 0 if self._server is None else len(self._server.server_state.connections)

    # -- script and record -----------------------------------------------------------------------

    def enqueue(self, *replies: Scripted) -> None:
        """Append replies; each model call, of either API, consumes the oldest one."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (health checks excluded)."""
        with self._lock:
            return list(self._requests)

    def model_requests(self, api: Api | None = None) -> list[RecordedRequest]:
        """Requests to the model endpoints (optionally of one API), oldest first."""
        return [r for r in self.requests if r.api is not None and (api is None or r.api == api)]

    def reset(self) -> None:
        """Forget the script and the recorded requests (for a server shared between tests)."""
        with self._lock:
            self._replies.clear()
            self._requests.clear()

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _pop_reply(self) -> Scripted | None:
        with self._lock:
            return self._replies.popleft() if self._replies else None

    # -- HTTP ------------------------------------------------------------------------------------

    async def _receive(self, request: Request) -> RecordedRequest | Response:
        """Record the request; return an error response instead if it must not be answered."""
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError as exc:
            self._record(request, raw.decode("utf-8", "replace"))
            return _error(400, f"request body is not JSON: {exc}", "invalid_json")
        recorded = self._record(request, body)
        if self.api_key is not None and recorded.bearer != self.api_key:
            return _error(
                401, "Incorrect API key provided to the scripted test server.", "invalid_api_key"
            )
        return recorded

    def _record(self, request: Request, body: Any) -> RecordedRequest:
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        with self._lock:
            self._requests.append(recorded)
        return recorded

    async def _model_call(self, request: Request, api: Api) -> Response:
        recorded = await self._receive(request)
        if isinstance(recorded, Response):
            return recorded
        if not isinstance(recorded.body, dict):
            return _error(400, "request body must be a JSON object", "invalid_body")
        reply = self._pop_reply()
        if reply is None:
            return _error(
                500,
                f"No reply was scripted for POST {recorded.path} (model request "
                f"#{len(self.model_requests())}); call server.enqueue(Reply...) before the run.",
                "no_scripted_reply",
            )
        if isinstance(reply, ErrorReply):
            return _error(reply.status, reply.message, reply.code, retry=reply.retry)
        try:
            return self._render(reply, api, recorded.body)
        except ValidationError as exc:
            return _error(
                500,
                f"the scripted server built a payload the installed openai types reject: {exc}",
                "invalid_scripted_payload",
            )

    def _render(self, reply: Reply, api: Api, body: Json) -> Response:
        """`reply` in the wire format of `api`, streamed if the request asked for it."""
        streamed = body.get("stream") is True
        model = str(body.get("model") or self.models[0])
        if api == "chat_completions":
            if streamed:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                chunks = self._chat_chunks(reply, model, include_usage)
                data: list[Json | str] = [*chunks, "[DONE]"]
                return _sse((None, d) for d in data)
            return JSONResponse(self._chat_completion(reply, model))
        previous = body.get("previous_response_id")
        if streamed:
            return _sse((e["type"], e) for e in self._response_events(reply, model, previous))
        return JSONResponse(self._response(reply, model, previous))

    async def _chat_completions(self, request: Request) -> Response:
        return await self._model_call(request, "chat_completions")

    async def _responses(self, request: Request) -> Response:
        return await self._model_call(request, "responses")

    async def _list_models(self, request: Request) -> Response:
        recorded = await self._receive(request)
        if isinstance(recorded, Response):
            return recorded
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "runplane-tests"}
            for m in self.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # -- Chat Completions ------------------------------------------------------------------------

    def _call_ids(self, reply: Reply) -> list[str]:
        return [c.call_id or f"call_{self._next_id()}" for c in reply.tool_calls]

    def _chat_completion(self, reply: Reply, model: str) -> Json:
        message: Json = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call, call_id in zip(reply.tool_calls, self._call_ids(reply), strict=True)
            ]
        payload: Json = {
            "id": f"chatcmpl-{self._next_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                    "logprobs": None,
                }
            ],
        }
        if reply.usage is not None:
            payload["usage"] = _chat_usage(reply.usage)
        ChatCompletion.model_validate(payload)
        return payload

    def _chat_chunks(self, reply: Reply, model: str, include_usage: bool) -> list[Json]:
        """The chunk sequence OpenAI streams: role, content pieces, tool-call pieces, finish."""
        base: Json = {
            "id": f"chatcmpl-{self._next_id()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def chunk(delta: Json, finish_reason: str | None = None) -> Json:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            return {**base, "choices": [choice]}

        chunks = [chunk({"role": "assistant", "content": "" if reply.text is not None else None})]
        chunks += [chunk({"content": piece}) for piece in self._pieces(reply.text or "")]
        for index, (call, call_id) in enumerate(
            zip(reply.tool_calls, self._call_ids(reply), strict=True)
        ):
            head = {"name": call.name, "arguments": ""}
            chunks.append(
                chunk(
                    {
                        "tool_calls": [
                            {"index": index, "id": call_id, "type": "function", "function": head}
                        ]
                    }
                )
            )
            chunks += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in self._pieces(call.arguments_json)
            ]
        chunks.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if include_usage and reply.usage is not None:
            # As OpenAI does: usage travels in one last chunk whose `choices` is empty.
            chunks.append({**base, "choices": [], "usage": _chat_usage(reply.usage)})
        for c in chunks:
            ChatCompletionChunk.model_validate(c)
        return chunks

    # -- Responses -------------------------------------------------------------------------------

    def _output_items(self, reply: Reply) -> list[Json]:
        items: list[Json] = []
        if reply.text is not None:
            items.append(
                {
                    "type": "message",
                    "id": f"msg_{self._next_id()}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [_output_text(reply.text)],
                }
            )
        for call, call_id in zip(reply.tool_calls, self._call_ids(reply), strict=True):
            items.append(
                {
                    "type": "function_call",
                    "id": f"fc_{self._next_id()}",
                    "call_id": call_id,
                    "name": call.name,
                    "arguments": call.arguments_json,
                    "status": "completed",
                }
            )
        return items

    def _response_object(
        self,
        response_id: str,
        model: str,
        previous_response_id: str | None,
        output: list[Json],
        usage: Usage | None,
        status: str,
    ) -> Json:
        payload: Json = {
            "id": response_id,
            "object": "response",
            "created_at": time.time(),
            "status": status,
            "model": model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "previous_response_id": previous_response_id,
            "usage": None if usage is None else _responses_usage(usage),
        }
        OpenAIResponse.model_validate(payload)
        return payload

    def _response(self, reply: Reply, model: str, previous_response_id: str | None) -> Json:
        return self._response_object(
            f"resp_{self._next_id()}",
            model,
            previous_response_id,
            self._output_items(reply),
            reply.usage,
            "completed",
        )

    def _response_events(
        self, reply: Reply, model: str, previous_response_id: str | None
    ) -> list[Json]:
        """The Responses SSE sequence: created, in_progress, per-item events, completed."""
        response_id = f"resp_{self._next_id()}"
        items = self._output_items(reply)
        events: list[Json] = []

        def emit(event_type: str, **fields: Any) -> None:
            events.append({"type": event_type, "sequence_number": len(events), **fields})

        started = self._response_object(
            response_id, model, previous_response_id, [], None, "in_progress"
        )
        emit("response.created", response=started)
        emit("response.in_progress", response=started)
        for index, item in enumerate(items):
            where = {"item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                text = item["content"][0]["text"]
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                emit("response.content_part.added", **where, content_index=0, part=_output_text(""))
                for piece in self._pieces(text):
                    emit(
                        "response.output_text.delta",
                        **where,
                        content_index=0,
                        delta=piece,
                        logprobs=[],
                    )
                emit("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
                emit(
                    "response.content_part.done", **where, content_index=0, part=_output_text(text)
                )
            else:
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                for piece in self._pieces(item["arguments"]):
                    emit("response.function_call_arguments.delta", **where, delta=piece)
                emit(
                    "response.function_call_arguments.done",
                    **where,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            emit("response.output_item.done", output_index=index, item=item)
        completed = self._response_object(
            response_id, model, previous_response_id, items, reply.usage, "completed"
        )
        emit("response.completed", response=completed)
        for event in events:
            _RESPONSE_EVENT.validate_python(event)
        return events

    def _pieces(self, text: str) -> list[str]:
        size = self.chunk_size
        return [text[i : i + size] for i in range(0, len(text), size)]


def _output_text(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _chat_usage(usage: Usage) -> Json:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _responses_usage(usage: Usage) -> Json:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _error(status: int, message: str, code: str | None, *, retry: bool = False) -> JSONResponse:
    """An error in OpenAI's shape; `x-should-retry` stops the client retrying a scripted failure."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
        headers={"x-should-retry": "true" if retry else "false"},
    )


def _sse(events: Iterable[tuple[str | None, Json | str]]) -> StreamingResponse:
    """Server-sent events; each is written separately so the client sees them arrive in pieces."""
    frames = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        frames.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")

    async def stream() -> AsyncIterator[str]:
        for frame in frames:
            yield frame
            await asyncio.sleep(0)

    return StreamingResponse(stream(), media_type="text/event-stream")
