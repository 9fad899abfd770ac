"""Where the demo's model comes from: OpenAI, the local model server, or a script.

Each is wrapped in `CountingModel`, which counts the calls that really reach the model, so the
demo can show that a resumed run did not ask the model again for what the journal recorded.
"""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from typing import Any

from agents.items import ModelResponse, TResponseStreamEvent
from agents.models.interface import Model
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage

__all__ = ["CountingModel", "make_model"]


class CountingModel(Model):
    """Delegates to a model and counts the calls that reach it."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.calls = 0

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        self.calls += 1
        return await self.inner.get_response(*args, **kwargs)

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        self.calls += 1
        async for event in self.inner.stream_response(*args, **kwargs):
            yield event

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)

    async def close(self) -> None:
        await self.inner.close()


def _scripted_step(call: Any) -> ModelStep:
    """The model's part, written down: ask for the tool, then answer from its output."""
    outputs = [
        item
        for item in (call.input if isinstance(call.input, list) else [])
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    if not outputs:
        return ModelStep(
            output=[function_call("order_status", {"order_id": "42"}, call_id="call_demo_1")],
            usage=Usage(requests=1, input_tokens=60, output_tokens=12, total_tokens=72),
        )
    status = _parse(outputs[-1]["output"])
    answer = (
        f"Your order 42 has {status.get('status', 'an unknown status')} with "
        f"{status.get('carrier', '?')} and should arrive on {status.get('eta', '?')}."
    )
    return ModelStep(
        output=[assistant_message(answer)],
        usage=Usage(requests=1, input_tokens=95, output_tokens=18, total_tokens=113),
    )


def _parse(output: Any) -> dict[str, Any]:
    """The tool's dict as the SDK rendered it for the model (`str(dict)`), read back safely."""
    try:
        value = ast.literal_eval(output) if isinstance(output, str) else output
    except (ValueError, SyntaxError):
        return {}
    return value if isinstance(value, dict) else {}


def make_model(source: str, *, base_url: str | None, model_name: str | None) -> CountingModel:
    """`source` is "openai", "local" (an OpenAI-compatible server at base_url) or "scripted"."""
    if source == "scripted":
        # A responder (not a fixed queue) so a resumed process, which skips the journaled
        # calls, gets the right step for the call it actually makes.
        return CountingModel(ScriptedModel([ModelStep.respond(_scripted_step) for _ in range(8)]))
    from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
    from agents.models.openai_responses import OpenAIResponsesModel
    from openai import AsyncOpenAI

    if source == "openai":
        return CountingModel(
            OpenAIResponsesModel(model=model_name or "gpt-4.1-mini", openai_client=AsyncOpenAI())
        )
    client = AsyncOpenAI(base_url=base_url, api_key="runplane-no-key")
    return CountingModel(
        OpenAIChatCompletionsModel(model=model_name or "local", openai_client=client)
    )
