"""The demo's run, in its own process so the parent can really kill it.

Prints one JSON object per line on stdout (events as they stream); the parent renders them.
`tool_started` comes from inside the tool, so it means the tool really runs in this process (a
resumed run streams the journaled tool call again without running it): the parent kills on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from typing import Any

from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from openai.types.responses import ResponseTextDeltaEvent

from ..runtime.identity import run_id
from ..runtime.runner import Runner
from .agent import QUESTION, build_agent
from .models import make_model

_STDOUT = threading.Lock()


def emit(**event: Any) -> None:
    """One whole line per event: the tool emits from a worker thread while the stream does too."""
    line = json.dumps(event, default=str) + "\n"
    with _STDOUT:
        sys.stdout.write(line)
        sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    model = make_model(args.source, base_url=args.base_url, model_name=args.model)
    lookups: list[str] = []

    def started(order_id: str) -> None:
        lookups.append(order_id)
        emit(type="tool_started", name="order_status", order_id=order_id, pid=os.getpid())

    with run_id(args.run_id):
        result = Runner.run_streamed(build_agent(model, started), QUESTION)
        async for event in result.stream_events():
            if isinstance(event, RawResponsesStreamEvent) and isinstance(
                event.data, ResponseTextDeltaEvent
            ):
                emit(type="text", delta=event.data.delta)
            elif isinstance(event, RunItemStreamEvent) and event.name == "tool_called":
                raw: Any = event.item.raw_item
                emit(type="tool_called", name=raw.name, arguments=raw.arguments)
            elif isinstance(event, RunItemStreamEvent) and event.name == "tool_output":
                emit(type="tool_output", output=getattr(event.item, "output", None))
    usage = result.context_wrapper.usage
    emit(
        type="done",
        final_output=result.final_output,
        live_model_calls=model.calls,
        tool_runs=len(lookups),
        total_tokens=usage.total_tokens,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--source", choices=["openai", "local", "scripted"], required=True)
    parser.add_argument("--base-url")
    parser.add_argument("--model")
    try:
        asyncio.run(main(parser.parse_args()))
    except Exception as exc:  # the parent shows it; a traceback would bury it
        emit(type="error", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
