"""The demo's agent: an order desk with one tool that takes a moment (the warehouse is slow)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agents import Agent, ModelSettings, function_tool
from agents.models.interface import Model

ORDERS: dict[str, dict[str, str]] = {
    "42": {"status": "shipped", "carrier": "DHL", "eta": "Thursday"},
    "7": {"status": "being packed", "carrier": "-", "eta": "next week"},
}
QUESTION = "Where is my order 42?"
WAREHOUSE_SECONDS = 2.0


def _nobody(order_id: str) -> None:
    return None


def build_agent(model: Model, on_lookup: Callable[[str], None] = _nobody) -> Agent[Any]:
    """`on_lookup` is told each time the tool really starts (a replayed output never starts it)."""

    @function_tool
    def order_status(order_id: str) -> dict[str, str]:
        """Look up an order's shipping status in the warehouse system, by order id."""
        on_lookup(order_id)
        time.sleep(WAREHOUSE_SECONDS)  # the slow system the demo's kill lands in
        return ORDERS.get(order_id.strip().lstrip("#"), {"status": "unknown order"})

    return Agent(
        name="Order desk",
        instructions=(
            "You answer customers' questions about their orders. Call the order_status tool "
            "with the order id, then answer in one short sentence."
        ),
        tools=[order_status],
        model=model,
        model_settings=ModelSettings(temperature=0),
    )
