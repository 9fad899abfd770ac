"""A durable run against the real local model, killed -9 and resumed by tests/e2e; run as a file.

    python real_model_program.py RUN_ID BASE_URL MODEL DATABASE API   (API: chat_completions |
                                                                      responses)

One agent, one tool (`order_status`). Each real execution of the tool is appended to calls.log in
the working directory. With BLOCK_MARKER=PATH the tool writes PATH and hangs there, after the
model's tool call was journaled: the test waits for PATH and kills the process. The last stdout
line is the final output as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from agents import Agent, ModelSettings, function_tool
from agents.models.interface import Model
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI
from runplane_durable import DurableBackend, LocalEngine, run_id

PROMPT = "Where is my order 4417?"
STATUS = "shipped on 2024-05-02, arriving Friday"


@function_tool
def order_status(order_id: str) -> str:
    """Look up the delivery status of an order by its id."""
    with open("calls.log", "a", encoding="utf-8") as log:  # closed at once: survives kill -9
        log.write(f"{order_id} {os.getpid()}\n")
    marker = os.environ.get("BLOCK_MARKER")
    if marker:
        Path(marker).write_text(f"{os.getpid()}\n", encoding="utf-8")
        time.sleep(300)  # the test kills -9 long before this ends
    return f"Order {order_id}: {STATUS}."


def make_model(base_url: str, model: str, api: str) -> Model:
    client = AsyncOpenAI(base_url=base_url, api_key="local", max_retries=0)
    if api == "responses":
        return OpenAIResponsesModel(model=model, openai_client=client)
    return OpenAIChatCompletionsModel(model=model, openai_client=client)


async def main(rid: str, base_url: str, model: str, database: str, api: str) -> str:
    agent = Agent(
        name="orders",
        instructions=(
            "You answer questions about orders. Use the order_status tool to look an order up, "
            "then answer in one short sentence."
        ),
        model=make_model(base_url, model, api),
        model_settings=ModelSettings(temperature=0),
        tools=[order_status],
    )
    engine = LocalEngine(database)
    try:
        with run_id(rid):
            result = await DurableBackend(engine).run(agent, PROMPT, max_turns=4)
        return str(result.final_output)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    output = asyncio.run(main(*sys.argv[1:6]))
    print(json.dumps({"final_output": output}), flush=True)
